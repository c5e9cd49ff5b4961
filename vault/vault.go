// Package vault implements the ov vault file: a JSON file of per-app secrets
// sealed under a key hierarchy rooted in a master password. Its format is
// specified normatively in SPEC.md beside this file.
//
// The key hierarchy is:
//
//	password --Argon2id (RFC 9106)--> KEK --XChaCha20-Poly1305--> root key R (random, 32 bytes)
//	R --HKDF-SHA256 (RFC 5869), "ov/v1/app/<app>/<epoch>"--> app key A
//	A --HKDF-SHA256--> value key, MAC key, check key
//	R --HKDF-SHA256, "ov/v2/deployment/<app>/<deployment>/<gen>"--> deployment key D
//	D --HKDF-SHA256--> grant wrap key, grant check key; the grant wraps A
//
// A machine key, the 32-byte file ov-init reads, is a deployment key (it
// opens its app through its grant while the grant stands: revoking the
// deployment or rotating its key retires it), the root key (unscoped: it
// opens every app), or, from before deployments, an app key A (it opens
// that app at that epoch). [Vault.Open] tells them apart by check values
// only, never by guessing.
//
// Invariants:
//
//   - Every secret value is sealed with XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha,
//     RFC 8439) under a fresh random 24-byte nonce, with associated data that binds
//     the format version, the app, its epoch and the secret name: a value moved to
//     another name, app or epoch does not open.
//   - Each app carries an HMAC-SHA256 over its name, epoch and sorted
//     (name, sealed value) pairs, verified before any value is opened and before
//     any change: an added, removed or swapped entry is detected.
//   - The wrapped root key's associated data binds the format version and the
//     KDF parameters, so they cannot be downgraded without the password.
//   - In format 2 the table of apps (the vault's generation, then every app's
//     name, epoch, check value and MAC) carries an HMAC under a key only the
//     root key produces, verified by Unlock, by every write and by Open with
//     the root key: a section forged with an earlier app key, rolled back,
//     added or removed is detected. A format-1 file is read (the password
//     and scoped keys open it; the root key as a machine key does not) and
//     every write upgrades it to format 2.
//   - Every write adds one to the generation, so the generation authenticated
//     by the table MAC orders the genuine copies of a vault. The package
//     keeps no state: a whole older genuine copy verifies as well as the
//     newest, and telling them apart is the caller's job ([Vault.Generation];
//     ov remembers the newest generation it has seen).
//   - Parsing is strict and bounded: at most [MaxFileSize] bytes, no unknown or
//     duplicate fields, no trailing data, names and lengths validated, KDF
//     parameters capped so a hostile file cannot make a reader allocate
//     unbounded memory.
//   - Every failed authentication of a value returns the same opaque
//     [ErrDecrypt]; a wrong password always returns [ErrWrongPassword]. No error
//     ever holds a secret value or a key byte.
//
// Keys derived and plaintexts decrypted by this package are zeroed with clear
// when no longer needed. This is best effort: Go may copy memory (the garbage
// collector, the AEAD's internal key copy, stack growth) and gives no
// guarantee. ov-init's exec stage therefore relies on execve discarding its
// whole address space, and its supervising PID 1 never calls this package.
//
// A Vault is not safe for concurrent use.
package vault

import (
	"crypto/hmac"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

const (
	// Version is the vault format version this package writes. It reads
	// Version and Version1 (SPEC.md, "Versions and upgrade").
	Version = 2
	// Version1 is the earlier format: no table_mac. Read, never written:
	// every write upgrades a file to Version.
	Version1 = 1

	// sectionFormat is the format number bound into value_aad and mac_input:
	// app sections are the same in versions 1 and 2.
	sectionFormat = 1

	// KeySize is the size of the root key, of every app key and so of a
	// machine key.
	KeySize = 32

	// SaltSize is the size of the Argon2id salt.
	SaltSize = 16

	// MaxFileSize bounds a vault file: Load reads no more and Parse refuses more.
	MaxFileSize = 16 << 20

	// MaxAppNameLen and MaxSecretNameLen bound names (see ValidAppName and
	// ValidSecretName).
	MaxAppNameLen    = 63
	MaxSecretNameLen = 255

	// MaxValueSize bounds a secret value so that "NAME=VALUE" and its
	// terminating NUL always fit one execve string (MAX_ARG_STRLEN, 128 KiB
	// on Linux) whatever the name's length.
	MaxValueSize = 128<<10 - MaxSecretNameLen - 2

	// MaxEpoch is the largest app epoch. Epochs start at 1.
	MaxEpoch = 1<<32 - 1

	// MaxGeneration is the largest generation of a format-2 vault.
	// Generations start at 1 and every write adds one.
	MaxGeneration = 1<<32 - 1

	// Upper bounds on the KDF parameters a vault file may ask for. ov runs
	// Argon2id with them before anything in the file is authenticated, so
	// they are what a real writer would choose, with room above DefaultKDF:
	// one unlock at the bounds costs about 25 s and 1 GiB on two cores
	// (SPEC.md section 4).
	MaxKDFTime      = 10
	MaxKDFMemoryKiB = 1 << 20 // 1 GiB
	MaxKDFThreads   = 16

	// kdfAlg is the only KDF algorithm.
	kdfAlg = "argon2id"

	// sealedRootSize is nonce || ciphertext || tag of the wrapped root key.
	sealedRootSize = chacha20poly1305.NonceSizeX + KeySize + chacha20poly1305.Overhead
	// minSealedValueSize and maxSealedValueSize bound a sealed value.
	minSealedValueSize = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
	maxSealedValueSize = minSealedValueSize + MaxValueSize
	// macSize is the size of check values and MACs (HMAC-SHA256).
	macSize = 32
)

// KDFParams are the Argon2id parameters stored in a vault file.
type KDFParams struct {
	Time      uint32 // passes over memory (t)
	MemoryKiB uint32 // memory in KiB (m)
	Threads   uint8  // lanes (p)
}

// DefaultKDF is what New and ChangePassword use. t=3, m=64 MiB is the second
// recommended option of RFC 9106 section 4 (for memory-constrained
// environments) and what the design asks for as a minimum; p=4 matches common
// laptops and CI machines. Unlocking costs about a quarter of a second (two
// cores) and 64 MiB once per ov command, which only ov pays: ov-init never runs
// Argon2id, it reads a machine key. The parameters live in the file, so a vault created
// with stronger ones keeps them.
var DefaultKDF = KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

// random is the source of salts, root keys and nonces. Tests replace it with a
// deterministic stream to produce the vectors in testdata.
var random io.Reader = crand.Reader

// testKDF, when not nil, replaces DefaultKDF for new vaults and new passwords.
// It is set only by _test.go files to keep tests fast.
var testKDF *KDFParams

func creationKDF() KDFParams {
	if testKDF != nil {
		return *testKDF
	}
	return DefaultKDF
}

// Errors that callers tell apart with errors.Is. They are returned wrapped
// with context (the app, the secret name); none holds a secret byte.
var (
	// ErrWrongPassword is the only error of a failed Unlock, whatever the cause.
	ErrWrongPassword = errors.New("wrong password, or the vault header was altered")
	// ErrWrongKey means a machine key opens neither the app nor the vault.
	ErrWrongKey = errors.New("wrong machine key")
	// ErrTampered means an app's MAC or check value does not match its
	// contents: entries were added, removed, swapped or altered.
	ErrTampered = errors.New("vault failed its integrity check")
	// ErrDecrypt is the one error of every secret value that fails to open.
	ErrDecrypt = errors.New("secret value failed to authenticate")
	// ErrNoSuchApp means the vault has no app of that name.
	ErrNoSuchApp = errors.New("no such app")
	// ErrNoSuchSecret means the app has no secret of that name.
	ErrNoSuchSecret = errors.New("no such secret")
	// ErrAppExists means CreateApp was asked for an app that exists.
	ErrAppExists = errors.New("already exists")
	// ErrReservedName means a secret's name is an environment variable that
	// chooses which program runs or what it loads (see ReservedName).
	ErrReservedName = errors.New("reserved secret name")
	// ErrUnsupportedVersion means the file's format version is neither
	// Version nor Version1.
	ErrUnsupportedVersion = errors.New("unsupported vault version")
	// ErrUnauthenticatedTable means the root key was used as a machine key
	// on a format-1 vault, whose table of apps nothing authenticates: a
	// section forged with an earlier app key would be indistinguishable.
	ErrUnauthenticatedTable = errors.New("an unscoped (root) machine key opens only format-2 vaults, " +
		"whose table of apps is authenticated; this vault is format 1: upgrade it with `ov vault upgrade` " +
		"(any ov write also upgrades it)")
)

// errTableAltered is the error of a table_mac that does not match.
var errTableAltered = fmt.Errorf("%w: the vault's table of apps was altered "+
	"(an app section was added, removed, replaced or rolled back, or the generation changed)", ErrTampered)

// errNotThisRoot is returned when a Root given to a method is not the root
// key of that vault: a programming error, not a user's.
var errNotThisRoot = errors.New("root key does not belong to this vault")

// WrongAppError is returned by Open and Scoped when the machine key is the
// current app key of another app of the same vault.
type WrongAppError struct {
	KeyApp        string // the app the key belongs to
	KeyDeployment string // its deployment, "" for a legacy app key
	WantApp       string // the app that was asked for
}

func (e *WrongAppError) Error() string {
	if e.KeyDeployment != "" {
		return fmt.Sprintf("machine key belongs to deployment %q of app %q, not to app %q", e.KeyDeployment, e.KeyApp, e.WantApp)
	}
	return fmt.Sprintf("machine key belongs to app %q, not %q", e.KeyApp, e.WantApp)
}

// Secret is one decrypted secret. Value belongs to the caller, who zeroes it
// with Wipe when done.
type Secret struct {
	Name  string
	Value []byte
}

// Wipe zeroes and drops the value.
func (s *Secret) Wipe() {
	clear(s.Value)
	s.Value = nil
}

// WipeAll wipes every secret of secrets.
func WipeAll(secrets []Secret) {
	for i := range secrets {
		secrets[i].Wipe()
	}
}

// Root is a vault's unwrapped root key, and the KEK that unwrapped it (so
// that a format-1 vault can be upgraded without running Argon2id again).
type Root struct {
	key    [KeySize]byte
	kek    [KeySize]byte
	hasKEK bool
}

// Bytes returns the key. The slice aliases r: Wipe zeroes it too.
func (r *Root) Bytes() []byte { return r.key[:] }

// Wipe zeroes the key and the KEK.
func (r *Root) Wipe() {
	clear(r.key[:])
	clear(r.kek[:])
	r.hasKEK = false
}

// Vault is a parsed or new vault. Its zero value is not usable: get one from
// New, Parse or Load.
type Vault struct {
	version     uint32 // Version or Version1
	kdf         KDFParams
	salt        []byte // SaltSize
	wrappedRoot []byte // nonce || ciphertext || tag, sealedRootSize
	rootCheck   []byte // macSize
	tableMAC    []byte // macSize in Version; nil in Version1
	generation  uint32 // 1..MaxGeneration in Version; 0 in Version1
	apps        map[string]*appSection

	// export names the one app of an export (SPEC.md, "Exports"): a
	// format-2 file for hosts, without kdf, salt or wrapped root key,
	// whose table MAC is computed under labelExport. "" in a vault.
	export string
}

// appSection is one app as stored.
type appSection struct {
	epoch   uint32
	check   []byte            // macSize
	mac     []byte            // macSize
	secrets map[string][]byte // name -> nonce || ciphertext || tag

	// Format 2: the app's deployments and their grants, and the grants
	// retired (revoked or rotated away), oldest first. Empty in format 1.
	deployments map[string]*deployment
	retired     []retiredGrant
}

// clone copies sec deeply enough that changing the copy (its MAC, its
// grants, its lists) leaves sec as it was.
func (sec *appSection) clone() *appSection {
	c := &appSection{epoch: sec.epoch, check: sec.check, mac: sec.mac, secrets: maps.Clone(sec.secrets),
		deployments: make(map[string]*deployment, len(sec.deployments)), retired: slices.Clone(sec.retired)}
	for name, d := range sec.deployments {
		dd := *d
		c.deployments[name] = &dd
	}
	return c
}

// New creates an empty vault under password with a random salt and root key,
// and returns it with its root key. The caller wipes the root.
func New(password []byte) (*Vault, *Root, error) {
	if len(password) == 0 {
		return nil, nil, errors.New("password is empty")
	}
	root := new(Root)
	if _, err := io.ReadFull(random, root.key[:]); err != nil {
		return nil, nil, fmt.Errorf("generating root key: %w", err)
	}
	v := &Vault{version: Version, generation: 1, apps: make(map[string]*appSection)}
	if err := v.wrapRoot(root, password); err != nil {
		root.Wipe()
		return nil, nil, err
	}
	rc, err := rootCheckValue(root.key[:])
	if err != nil {
		root.Wipe()
		return nil, nil, err
	}
	v.rootCheck = rc
	if v.tableMAC, err = tableMAC(root.key[:], v.generation, v.apps); err != nil {
		root.Wipe()
		return nil, nil, err
	}
	return v, root, nil
}

// Version returns the file's format version: Version, or Version1 for a file
// no write has upgraded yet.
func (v *Vault) Version() int {
	if v == nil {
		return 0
	}
	return int(v.version)
}

// Generation returns the generation of a format-2 vault: 1 when it was
// created (or upgraded from format 1), plus one per write. A format-1 vault
// has none and returns 0. Parsing authenticates nothing: the generation is
// the one the root key's holder wrote only once Unlock (or a write) has
// verified the table, which binds it.
func (v *Vault) Generation() uint32 {
	if v == nil {
		return 0
	}
	return v.generation
}

// RootCheck returns a copy of the vault's root_check: public, constant for
// the vault's life (the password may change, the root key does not), and
// matched only by its root key, so it names the vault. Once Unlock has
// succeeded it is authenticated.
func (v *Vault) RootCheck() []byte {
	if v == nil {
		return nil
	}
	return slices.Clone(v.rootCheck)
}

// wrapRoot seals root under password with a new salt and creationKDF, for
// Version, and keeps the KEK in root.
func (v *Vault) wrapRoot(root *Root, password []byte) error {
	params := creationKDF()
	if err := checkKDF(params); err != nil {
		return err
	}
	salt := make([]byte, SaltSize)
	if _, err := io.ReadFull(random, salt); err != nil {
		return fmt.Errorf("generating salt: %w", err)
	}
	kek := argon2.IDKey(password, salt, params.Time, params.MemoryKiB, params.Threads, KeySize)
	defer clear(kek)
	sealed, err := seal(kek, root.key[:], rootAAD(Version, params, salt))
	if err != nil {
		return fmt.Errorf("wrapping root key: %w", err)
	}
	v.kdf, v.salt, v.wrappedRoot = params, salt, sealed
	copy(root.kek[:], kek)
	root.hasKEK = true
	return nil
}

// Unlock unwraps the root key with password. Any failure to unwrap returns
// ErrWrongPassword and nothing else. It then verifies root_check and, in
// format 2, the table of apps (ErrTampered). A format-1 vault has no table
// to verify: it is accepted, and the next write upgrades it.
func (v *Vault) Unlock(password []byte) (*Root, error) {
	if err := v.usable(); err != nil {
		return nil, err
	}
	if v.export != "" {
		return nil, v.exportError()
	}
	p := v.kdf
	if err := checkKDF(p); err != nil { // Parse checked; a Vault is only made by Parse and New
		return nil, err
	}
	kek := argon2.IDKey(password, v.salt, p.Time, p.MemoryKiB, p.Threads, KeySize)
	defer clear(kek)
	pt, err := open(kek, v.wrappedRoot, rootAAD(v.version, p, v.salt))
	if errors.Is(err, errOpen) || (err == nil && len(pt) != KeySize) {
		clear(pt)
		return nil, ErrWrongPassword
	}
	if err != nil {
		return nil, fmt.Errorf("unwrapping root key: %w", err)
	}
	root := new(Root)
	copy(root.key[:], pt)
	clear(pt)
	copy(root.kek[:], kek)
	root.hasKEK = true
	if err := v.checkRoot(root); err != nil {
		root.Wipe()
		return nil, fmt.Errorf("%w: root_check does not match the unwrapped root key", ErrTampered)
	}
	if v.version == Version {
		if err := v.verifyTable(root.key[:]); err != nil { // never an export: usable refused it
			root.Wipe()
			return nil, err
		}
	}
	return root, nil
}

// ChangePassword re-wraps the root key under newPassword with a new salt and
// DefaultKDF. Apps, values and every machine key are unchanged. Like every
// write, it leaves the vault in format 2.
func (v *Vault) ChangePassword(root *Root, newPassword []byte) error {
	if len(newPassword) == 0 {
		return errors.New("new password is empty")
	}
	tx, err := v.beginWrite(root, false)
	if err != nil {
		return err
	}
	defer tx.close()
	if err := v.wrapRoot(root, newPassword); err != nil {
		return err
	}
	tx.commit()
	return nil
}

// Upgrade leaves the vault in format 2, as any write does, and changes
// nothing else: on a format-1 vault it verifies every app section under root,
// re-seals the root key for format 2 under the same KEK, salt and parameters
// (root must come from Unlock, which keeps the KEK) and computes the table
// MAC, at generation 1. On a format-2 vault it is not a write: it verifies
// the table and changes nothing, the generation included.
func (v *Vault) Upgrade(root *Root) error {
	if err := v.checkRoot(root); err != nil {
		return err
	}
	if v.export != "" {
		return v.exportError()
	}
	if v.version == Version {
		return v.verifyTable(root.key[:])
	}
	tx, err := v.beginWrite(root, true)
	if err != nil {
		return err
	}
	defer tx.close()
	tx.commit()
	return nil
}

// writeTx is one write in progress: beginWrite authenticated the table, a
// method changes the apps, commit authenticates the new table (and upgrades
// a format-1 vault).
type writeTx struct {
	v        *Vault
	tableKey []byte
	wrapped  []byte // the root key sealed for Version, when upgrading
}

// beginWrite checks root and authenticates what the write will
// re-authenticate: a format-2 table_mac, or every section of a format-1
// vault, whose root key it then re-seals for format 2 when rewrap is set.
// It changes nothing; the caller closes the transaction.
func (v *Vault) beginWrite(root *Root, rewrap bool) (*writeTx, error) {
	if err := v.checkRoot(root); err != nil {
		return nil, err
	}
	if v.export != "" {
		return nil, v.exportError()
	}
	switch v.version {
	case Version:
		if err := v.verifyTable(root.key[:]); err != nil {
			return nil, err
		}
		if v.generation >= MaxGeneration {
			return nil, fmt.Errorf("the vault is at the last generation %d and cannot be written again; "+
				"create a new vault and move the apps to it", v.generation)
		}
	case Version1:
		if err := v.verifySections(root); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w %d", ErrUnsupportedVersion, v.version)
	}
	tk, err := hkdfKey(root.key[:], infoTableKey)
	if err != nil {
		return nil, err
	}
	tx := &writeTx{v: v, tableKey: tk}
	if v.version == Version1 && rewrap {
		if tx.wrapped, err = v.rewrapV2(root); err != nil {
			tx.close()
			return nil, err
		}
	}
	return tx, nil
}

// commit makes the vault format 2 at the next generation (1 for a vault
// upgraded from format 1), with a table MAC over it and the current apps.
// beginWrite made sure the next generation exists.
func (tx *writeTx) commit() {
	v := tx.v
	if tx.wrapped != nil {
		v.wrappedRoot = tx.wrapped
	}
	if v.version == Version1 {
		v.generation = 1
	} else {
		v.generation++
	}
	v.version = Version
	v.tableMAC = hmacSHA256(tx.tableKey, tableInput(v.generation, v.apps))
}

func (tx *writeTx) close() { clear(tx.tableKey) }

// rewrapV2 seals the root key for format 2 under the KEK that unlocked this
// format-1 vault: same salt and parameters, fresh nonce.
func (v *Vault) rewrapV2(root *Root) ([]byte, error) {
	errNoKEK := errors.New("upgrading a format-1 vault needs its root key as Unlock returns it, with the password of this vault's header")
	if !root.hasKEK {
		return nil, errNoKEK
	}
	pt, err := open(root.kek[:], v.wrappedRoot, rootAAD(Version1, v.kdf, v.salt))
	same := err == nil && hmac.Equal(pt, root.key[:])
	clear(pt)
	if !same {
		return nil, errNoKEK
	}
	sealed, err := seal(root.kek[:], root.key[:], rootAAD(Version, v.kdf, v.salt))
	if err != nil {
		return nil, fmt.Errorf("wrapping root key: %w", err)
	}
	return sealed, nil
}

// verifyTable checks table_mac under the root key rootKey.
func (v *Vault) verifyTable(rootKey []byte) error {
	if v.version != Version {
		return ErrUnauthenticatedTable
	}
	mac := tableMAC
	if v.export != "" {
		mac = exportMAC
	}
	m, err := mac(rootKey, v.generation, v.apps)
	if err != nil {
		return err
	}
	if !hmac.Equal(m, v.tableMAC) {
		return errTableAltered
	}
	return nil
}

// verifySections checks every app's check value and MAC under root: what
// upgrading a format-1 vault is about to authenticate.
func (v *Vault) verifySections(root *Root) error {
	for _, app := range v.Apps() {
		_, keys, err := v.unlockSection(root, app)
		if err != nil {
			return err
		}
		keys.wipe()
	}
	return nil
}

// usable refuses the zero Vault.
func (v *Vault) usable() error {
	bad := v == nil || len(v.rootCheck) != macSize || v.apps == nil
	switch {
	case bad:
	case v.export != "":
		// An export: format 2, its one app, no password-wrapped root key.
		bad = v.version != Version || len(v.tableMAC) != macSize || v.generation < 1 ||
			v.wrappedRoot != nil || v.salt != nil || len(v.apps) != 1 || v.apps[v.export] == nil
	default:
		bad = len(v.wrappedRoot) != sealedRootSize || len(v.salt) != SaltSize ||
			(v.version != Version || len(v.tableMAC) != macSize || v.generation < 1) &&
				(v.version != Version1 || v.tableMAC != nil || v.generation != 0)
	}
	if bad {
		return errors.New("vault is not initialized: get one from New, Parse or Load")
	}
	return nil
}

// checkRoot reports whether root is this vault's root key.
func (v *Vault) checkRoot(root *Root) error {
	if err := v.usable(); err != nil {
		return err
	}
	if root == nil {
		return errNotThisRoot
	}
	rc, err := rootCheckValue(root.key[:])
	if err != nil {
		return err
	}
	if !hmac.Equal(rc, v.rootCheck) {
		return errNotThisRoot
	}
	return nil
}

// checkKDF enforces the bounds a vault file's KDF parameters must meet,
// before Argon2id runs. Errors name the field, its value and the bound.
func checkKDF(p KDFParams) error {
	switch {
	case p.Time < 1:
		return fmt.Errorf("kdf.time %d is under the minimum of 1", p.Time)
	case p.Time > MaxKDFTime:
		return fmt.Errorf("kdf.time %d is over the limit of %d", p.Time, MaxKDFTime)
	case p.Threads < 1:
		return fmt.Errorf("kdf.threads %d is under the minimum of 1", p.Threads)
	case p.Threads > MaxKDFThreads:
		return fmt.Errorf("kdf.threads %d is over the limit of %d", p.Threads, MaxKDFThreads)
	case p.MemoryKiB < 8*uint32(p.Threads):
		return fmt.Errorf("kdf.memory_kib %d is under the minimum of %d (8 × kdf.threads)", p.MemoryKiB, 8*uint32(p.Threads))
	case p.MemoryKiB > MaxKDFMemoryKiB:
		return fmt.Errorf("kdf.memory_kib %d is over the limit of %d (1 GiB)", p.MemoryKiB, MaxKDFMemoryKiB)
	}
	return nil
}
