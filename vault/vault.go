// Package vault implements the ov vault file: a JSON file of per-app secrets
// sealed under a key hierarchy rooted in a master password. Its format is
// specified normatively in SPEC.md beside this file.
//
// The key hierarchy is:
//
//	password --Argon2id (RFC 9106)--> KEK --XChaCha20-Poly1305--> root key (random, 32 bytes)
//	root key --HKDF-SHA256 (RFC 5869), info "ov/v1/app/<app>/<epoch>"--> app key
//	app key  --HKDF-SHA256--> value key, MAC key, check key
//
// A machine key, the 32-byte file ov-init reads, is either the root key
// (unscoped: it opens every app) or one app key (scoped: it opens that app at
// that epoch and nothing else). [Vault.Open] tells the two apart by the app's
// check value, never by guessing.
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

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

const (
	// Version is the only vault format version this package reads and writes.
	Version = 1

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

	// Upper bounds on the KDF parameters a vault file may ask for. They keep
	// a hostile file from making a reader allocate or compute without bound,
	// while leaving room far above DefaultKDF.
	MaxKDFTime      = 100
	MaxKDFMemoryKiB = 4 << 20 // 4 GiB

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
	// ErrUnsupportedVersion means the file's format version is not Version.
	ErrUnsupportedVersion = errors.New("unsupported vault version")
)

// errNotThisRoot is returned when a Root given to a method is not the root
// key of that vault: a programming error, not a user's.
var errNotThisRoot = errors.New("root key does not belong to this vault")

// WrongAppError is returned by Open and Scoped when the machine key is the
// current app key of another app of the same vault.
type WrongAppError struct {
	KeyApp  string // the app the key belongs to
	WantApp string // the app that was asked for
}

func (e *WrongAppError) Error() string {
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

// Root is a vault's unwrapped root key.
type Root struct {
	key [KeySize]byte
}

// Bytes returns the key. The slice aliases r: Wipe zeroes it too.
func (r *Root) Bytes() []byte { return r.key[:] }

// Wipe zeroes the key.
func (r *Root) Wipe() { clear(r.key[:]) }

// Vault is a parsed or new vault. Its zero value is not usable: get one from
// New, Parse or Load.
type Vault struct {
	kdf         KDFParams
	salt        []byte // SaltSize
	wrappedRoot []byte // nonce || ciphertext || tag, sealedRootSize
	rootCheck   []byte // macSize
	apps        map[string]*appSection
}

// appSection is one app as stored.
type appSection struct {
	epoch   uint32
	check   []byte            // macSize
	mac     []byte            // macSize
	secrets map[string][]byte // name -> nonce || ciphertext || tag
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
	v := &Vault{apps: make(map[string]*appSection)}
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
	return v, root, nil
}

// wrapRoot seals root under password with a new salt and creationKDF.
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
	sealed, err := seal(kek, root.key[:], rootAAD(params, salt))
	if err != nil {
		return fmt.Errorf("wrapping root key: %w", err)
	}
	v.kdf, v.salt, v.wrappedRoot = params, salt, sealed
	return nil
}

// Unlock unwraps the root key with password. Any failure to authenticate
// returns ErrWrongPassword and nothing else.
func (v *Vault) Unlock(password []byte) (*Root, error) {
	if err := v.usable(); err != nil {
		return nil, err
	}
	p := v.kdf
	kek := argon2.IDKey(password, v.salt, p.Time, p.MemoryKiB, p.Threads, KeySize)
	defer clear(kek)
	pt, err := open(kek, v.wrappedRoot, rootAAD(p, v.salt))
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
	if err := v.checkRoot(root); err != nil {
		root.Wipe()
		return nil, fmt.Errorf("%w: root_check does not match the unwrapped root key", ErrTampered)
	}
	return root, nil
}

// ChangePassword re-wraps the root key under newPassword with a new salt and
// DefaultKDF. Apps, values and every machine key are unchanged.
func (v *Vault) ChangePassword(root *Root, newPassword []byte) error {
	if len(newPassword) == 0 {
		return errors.New("new password is empty")
	}
	if err := v.checkRoot(root); err != nil {
		return err
	}
	return v.wrapRoot(root, newPassword)
}

// usable refuses the zero Vault.
func (v *Vault) usable() error {
	if v == nil || len(v.wrappedRoot) != sealedRootSize || len(v.salt) != SaltSize || len(v.rootCheck) != macSize || v.apps == nil {
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

// checkKDF enforces the bounds a vault file's KDF parameters must meet.
func checkKDF(p KDFParams) error {
	switch {
	case p.Time < 1 || p.Time > MaxKDFTime:
		return fmt.Errorf("kdf time %d is outside 1..%d", p.Time, MaxKDFTime)
	case p.Threads < 1:
		return fmt.Errorf("kdf threads %d is outside 1..255", p.Threads)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > MaxKDFMemoryKiB:
		return fmt.Errorf("kdf memory_kib %d is outside %d..%d (8 × threads .. 4 GiB)", p.MemoryKiB, 8*uint32(p.Threads), MaxKDFMemoryKiB)
	}
	return nil
}
