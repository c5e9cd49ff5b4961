package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strconv"
	"syscall"
)

// fileJSON is the vault file as JSON. encoding/json writes struct fields in
// this order and map keys sorted, which makes Marshal deterministic.
type fileJSON struct {
	Version     uint32             `json:"version"`
	Generation  uint32             `json:"generation,omitempty"` // format 2 only, never 0 there
	Export      *string            `json:"export,omitempty"`     // exports only
	KDF         *kdfJSON           `json:"kdf,omitempty"`        // never in an export
	WrappedRoot string             `json:"wrapped_root,omitempty"`
	RootCheck   string             `json:"root_check"`
	TableMAC    string             `json:"table_mac,omitempty"` // format 2 only
	Apps        map[string]appJSON `json:"apps"`
}

type kdfJSON struct {
	Alg       string `json:"alg"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      string `json:"salt"`
}

type appJSON struct {
	Epoch       uint32                     `json:"epoch"`
	Check       string                     `json:"check"`
	MAC         string                     `json:"mac"`
	Secrets     map[string]string          `json:"secrets"`
	Deployments *map[string]deploymentJSON `json:"deployments,omitempty"` // format 2 only
	Retired     *[]retiredJSON             `json:"retired,omitempty"`     // format 2 only
}

type deploymentJSON struct {
	Generation uint32 `json:"generation"`
	Created    string `json:"created"`
	Rotated    string `json:"rotated"`
	Check      string `json:"check"`
	Grant      string `json:"grant"`
}

type retiredJSON struct {
	Deployment string `json:"deployment"`
	Generation uint32 `json:"generation"`
	Check      string `json:"check"`
	Retired    string `json:"retired"`
	Reason     string `json:"reason"`
}

// shape describes what a JSON value must look like; the walk in checkShape
// holds a document to it before encoding/json decodes it, because
// encoding/json alone accepts duplicate keys (the last wins), matches field
// names case-insensitively and takes null for anything.
type shape struct {
	kind   int
	bits   int               // kindUint: the integer's size
	fields map[string]*shape // kindStruct: every key, all required
	elem   *shape            // kindMap: the shape of every value
}

const (
	kindUint   = iota // a non-negative integer in canonical decimal
	kindString        // a string
	kindStruct        // an object with exactly the keys of fields
	kindMap           // an object with any keys, each once
	kindArray         // an array, every element of shape elem
)

// fileShapeV1 is a format-1 file; fileShapeV2 adds generation and table_mac.
var fileShapeV1 = &shape{kind: kindStruct, fields: map[string]*shape{
	"version": {kind: kindUint, bits: 32},
	"kdf": {kind: kindStruct, fields: map[string]*shape{
		"alg":        {kind: kindString},
		"time":       {kind: kindUint, bits: 32},
		"memory_kib": {kind: kindUint, bits: 32},
		"threads":    {kind: kindUint, bits: 8},
		"salt":       {kind: kindString},
	}},
	"wrapped_root": {kind: kindString},
	"root_check":   {kind: kindString},
	"apps": {kind: kindMap, elem: &shape{kind: kindStruct, fields: map[string]*shape{
		"epoch":   {kind: kindUint, bits: 32},
		"check":   {kind: kindString},
		"mac":     {kind: kindString},
		"secrets": {kind: kindMap, elem: &shape{kind: kindString}},
	}}},
}}

var fileShapeV2 = func() *shape {
	s := &shape{kind: kindStruct, fields: map[string]*shape{
		"generation": {kind: kindUint, bits: 32},
		"table_mac":  {kind: kindString},
	}}
	for k, f := range fileShapeV1.fields {
		s.fields[k] = f
	}
	app := &shape{kind: kindStruct, fields: map[string]*shape{
		"deployments": {kind: kindMap, elem: &shape{kind: kindStruct, fields: map[string]*shape{
			"generation": {kind: kindUint, bits: 32},
			"created":    {kind: kindString},
			"rotated":    {kind: kindString},
			"check":      {kind: kindString},
			"grant":      {kind: kindString},
		}}},
		"retired": {kind: kindArray, elem: &shape{kind: kindStruct, fields: map[string]*shape{
			"deployment": {kind: kindString},
			"generation": {kind: kindUint, bits: 32},
			"check":      {kind: kindString},
			"retired":    {kind: kindString},
			"reason":     {kind: kindString},
		}}},
	}}
	for k, f := range fileShapeV1.fields["apps"].elem.fields {
		app.fields[k] = f
	}
	s.fields["apps"] = &shape{kind: kindMap, elem: app}
	return s
}()

// fileShapeExport is an export: format 2 without kdf and wrapped_root, with
// export.
var fileShapeExport = func() *shape {
	s := &shape{kind: kindStruct, fields: map[string]*shape{"export": {kind: kindString}}}
	for k, f := range fileShapeV2.fields {
		if k != "kdf" && k != "wrapped_root" {
			s.fields[k] = f
		}
	}
	return s
}()

// Parse decodes a vault file strictly: at most MaxFileSize bytes, version 2
// or 1, exactly the fields of SPEC.md for that version each once, no trailing data, valid names,
// canonical base64 of the right lengths and bounded KDF parameters. It
// authenticates nothing: that needs a key (Unlock, Open).
func Parse(data []byte) (*Vault, error) {
	v, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("parsing vault: %w", err)
	}
	return v, nil
}

func parse(data []byte) (*Vault, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("file is %d bytes, over the limit of %d", len(data), MaxFileSize)
	}
	// The version comes first so that a newer file is refused for its
	// version, not for the fields it added.
	// A map, not a struct: keys match exactly, as checkShape's do, where a
	// struct would take "EXPORT" for "export".
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	version, ok := probe["version"]
	if !ok {
		return nil, errors.New("missing field \"version\"")
	}
	var fs *shape
	switch got := string(version); got {
	case strconv.Itoa(Version):
		fs = fileShapeV2
		if _, ok := probe["export"]; ok {
			fs = fileShapeExport
		}
	case strconv.Itoa(Version1):
		fs = fileShapeV1
	default:
		// Never the raw token: a string could carry a line of its own.
		if shortDecimal(got) {
			return nil, fmt.Errorf("%w %s (this build reads versions %d and %d)", ErrUnsupportedVersion, got, Version1, Version)
		}
		return nil, fmt.Errorf("%w (this build reads versions %d and %d)", ErrUnsupportedVersion, Version1, Version)
	}

	if err := checkShape(data, fs); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f fileJSON
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	return fromJSON(&f)
}

// shortDecimal reports whether s is 1 to 10 ASCII digits.
func shortDecimal(s string) bool {
	if len(s) < 1 || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkShape walks data and holds it to fs.
func checkShape(data []byte, fs *shape) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := walk(dec, fs, ""); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// walk reads one value from dec and checks it against s. path names the
// value in errors ("apps.web.epoch").
func walk(dec *json.Decoder, s *shape, path string) error {
	at := func() string {
		if path == "" {
			return "top level"
		}
		return strconv.Quote(path)
	}
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("invalid JSON at %s: %w", at(), err)
	}
	switch s.kind {
	case kindUint:
		n, ok := tok.(json.Number)
		if !ok {
			return fmt.Errorf("%s must be a number", at())
		}
		if _, err := strconv.ParseUint(string(n), 10, s.bits); err != nil {
			return fmt.Errorf("%s must be an integer from 0 to %d, not %s", at(), uint64(1)<<s.bits-1, n)
		}
		return nil
	case kindString:
		if _, ok := tok.(string); !ok {
			return fmt.Errorf("%s must be a string", at())
		}
		return nil
	}
	if s.kind == kindArray {
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return fmt.Errorf("%s must be an array", at())
		}
		for i := 0; dec.More(); i++ {
			if err := walk(dec, s.elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // the closing ']'
			return fmt.Errorf("invalid JSON at %s: %w", at(), err)
		}
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("%s must be an object", at())
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("invalid JSON at %s: %w", at(), err)
		}
		key, ok := tok.(string) // the decoder yields only strings as keys; be sure anyway
		if !ok {
			return fmt.Errorf("invalid JSON at %s: object key is not a string", at())
		}
		if seen[key] {
			return fmt.Errorf("%s has key %q twice", at(), key)
		}
		seen[key] = true
		sub := s.elem
		if s.kind == kindStruct {
			if sub = s.fields[key]; sub == nil {
				return fmt.Errorf("%s has unknown field %q", at(), key)
			}
		}
		p := key
		if path != "" {
			p = path + "." + key
		}
		if err := walk(dec, sub, p); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return fmt.Errorf("invalid JSON at %s: %w", at(), err)
	}
	for key := range s.fields {
		if !seen[key] {
			return fmt.Errorf("%s is missing field %q", at(), key)
		}
	}
	return nil
}

// decodeB64 decodes canonical standard base64 of exactly size bytes, or of
// min..max bytes when size is -1.
func decodeB64(field, s string, min, max int) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || base64.StdEncoding.EncodeToString(b) != s {
		return nil, fmt.Errorf("%s is not canonical standard base64", field)
	}
	if len(b) < min || len(b) > max {
		if min == max {
			return nil, fmt.Errorf("%s must decode to %d bytes, not %d", field, min, len(b))
		}
		return nil, fmt.Errorf("%s must decode to %d..%d bytes, not %d", field, min, max, len(b))
	}
	return b, nil
}

func fromJSON(f *fileJSON) (*Vault, error) {
	v := &Vault{version: f.Version, apps: make(map[string]*appSection, len(f.Apps))}
	if v.version != Version && v.version != Version1 { // parse checked it; be sure
		return nil, fmt.Errorf("%w %d", ErrUnsupportedVersion, v.version)
	}
	var err error
	if f.Export != nil {
		// An export: its one app, and no password-wrapped root key.
		if err := ValidAppName(*f.Export); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		if _, ok := f.Apps[*f.Export]; !ok || len(f.Apps) != 1 {
			return nil, fmt.Errorf("an export of app %q must hold that app and no other", *f.Export)
		}
		v.export = *f.Export
	} else {
		if f.KDF == nil { // checkShape made sure it is there; be sure
			return nil, errors.New("missing field \"kdf\"")
		}
		if f.KDF.Alg != kdfAlg {
			return nil, fmt.Errorf("unsupported kdf %q (want %q)", f.KDF.Alg, kdfAlg)
		}
		v.kdf = KDFParams{Time: f.KDF.Time, MemoryKiB: f.KDF.MemoryKiB, Threads: f.KDF.Threads}
		if err := checkKDF(v.kdf); err != nil {
			return nil, err
		}
		if v.salt, err = decodeB64("kdf.salt", f.KDF.Salt, SaltSize, SaltSize); err != nil {
			return nil, err
		}
		if v.wrappedRoot, err = decodeB64("wrapped_root", f.WrappedRoot, sealedRootSize, sealedRootSize); err != nil {
			return nil, err
		}
	}
	if v.rootCheck, err = decodeB64("root_check", f.RootCheck, macSize, macSize); err != nil {
		return nil, err
	}
	if v.version == Version {
		if f.Generation < 1 {
			return nil, errors.New("generation must be at least 1")
		}
		v.generation = f.Generation
		if v.tableMAC, err = decodeB64("table_mac", f.TableMAC, macSize, macSize); err != nil {
			return nil, err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(f.Apps)) {
		a := f.Apps[name]
		if err := ValidAppName(name); err != nil {
			return nil, err
		}
		if a.Epoch < 1 {
			return nil, fmt.Errorf("app %q: epoch must be at least 1", name)
		}
		sec := &appSection{epoch: a.Epoch, secrets: make(map[string][]byte, len(a.Secrets))}
		if sec.check, err = decodeB64(fmt.Sprintf("apps.%s.check", name), a.Check, macSize, macSize); err != nil {
			return nil, err
		}
		if sec.mac, err = decodeB64(fmt.Sprintf("apps.%s.mac", name), a.MAC, macSize, macSize); err != nil {
			return nil, err
		}
		for _, sname := range slices.Sorted(maps.Keys(a.Secrets)) {
			sv := a.Secrets[sname]
			if err := ValidSecretName(sname); err != nil {
				return nil, fmt.Errorf("app %q: %w", name, err)
			}
			field := fmt.Sprintf("apps.%s.secrets.%s", name, sname)
			if sec.secrets[sname], err = decodeB64(field, sv, minSealedValueSize, maxSealedValueSize); err != nil {
				return nil, err
			}
		}
		if err := depsFromJSON(name, a, sec); err != nil {
			return nil, err
		}
		v.apps[name] = sec
	}
	return v, nil
}

// depsFromJSON decodes and validates app's deployments and retired grants.
func depsFromJSON(app string, a appJSON, sec *appSection) error {
	sec.deployments = map[string]*deployment{}
	if a.Deployments != nil {
		for _, dep := range slices.Sorted(maps.Keys(*a.Deployments)) {
			dj := (*a.Deployments)[dep]
			if err := ValidDeploymentName(dep); err != nil {
				return fmt.Errorf("app %q: %w", app, err)
			}
			field := fmt.Sprintf("apps.%s.deployments.%s", app, dep)
			if dj.Generation < 1 {
				return fmt.Errorf("%s.generation must be at least 1", field)
			}
			if !validDate(dj.Created) || !validDate(dj.Rotated) {
				return fmt.Errorf("%s: created and rotated must be dates like 2006-01-02T15:04:05Z", field)
			}
			d := &deployment{generation: dj.Generation, created: dj.Created, rotated: dj.Rotated}
			var err error
			if d.check, err = decodeB64(field+".check", dj.Check, macSize, macSize); err != nil {
				return err
			}
			if d.grant, err = decodeB64(field+".grant", dj.Grant, sealedGrantSize, sealedGrantSize); err != nil {
				return err
			}
			sec.deployments[dep] = d
		}
	}
	if a.Retired != nil {
		if len(*a.Retired) > MaxRetired {
			return fmt.Errorf("apps.%s.retired has %d entries, over the limit of %d", app, len(*a.Retired), MaxRetired)
		}
		for i, rj := range *a.Retired {
			field := fmt.Sprintf("apps.%s.retired[%d]", app, i)
			if err := ValidDeploymentName(rj.Deployment); err != nil {
				return fmt.Errorf("%s: %w", field, err)
			}
			if rj.Generation < 1 {
				return fmt.Errorf("%s.generation must be at least 1", field)
			}
			if !validDate(rj.Retired) {
				return fmt.Errorf("%s.retired must be a date like 2006-01-02T15:04:05Z", field)
			}
			if rj.Reason != ReasonRevoked && rj.Reason != ReasonRotated {
				return fmt.Errorf("%s.reason must be %q or %q", field, ReasonRevoked, ReasonRotated)
			}
			c, err := decodeB64(field+".check", rj.Check, macSize, macSize)
			if err != nil {
				return err
			}
			sec.retired = append(sec.retired, retiredGrant{deployment: rj.Deployment, generation: rj.Generation, check: c, date: rj.Retired, reason: rj.Reason})
		}
	}
	return nil
}

// Marshal encodes the vault as SPEC.md says: indented JSON, fields in a fixed
// order, map keys sorted, a trailing newline. The same vault always encodes
// to the same bytes. A format-1 vault that no write has upgraded is encoded
// as format 1.
func (v *Vault) Marshal() ([]byte, error) {
	if err := v.usable(); err != nil {
		return nil, err
	}
	b64 := base64.StdEncoding.EncodeToString
	f := fileJSON{
		Version:   v.version,
		RootCheck: b64(v.rootCheck),
		Apps:      make(map[string]appJSON, len(v.apps)),
	}
	if v.export != "" {
		f.Export = &v.export
	} else {
		f.KDF = &kdfJSON{
			Alg:       kdfAlg,
			Time:      v.kdf.Time,
			MemoryKiB: v.kdf.MemoryKiB,
			Threads:   v.kdf.Threads,
			Salt:      b64(v.salt),
		}
		f.WrappedRoot = b64(v.wrappedRoot)
	}
	if v.version == Version {
		f.Generation = v.generation
		f.TableMAC = b64(v.tableMAC)
	}
	for name, sec := range v.apps {
		a := appJSON{Epoch: sec.epoch, Check: b64(sec.check), MAC: b64(sec.mac), Secrets: make(map[string]string, len(sec.secrets))}
		for sname, sv := range sec.secrets {
			a.Secrets[sname] = b64(sv)
		}
		if v.version == Version {
			deps := make(map[string]deploymentJSON, len(sec.deployments))
			for dep, d := range sec.deployments {
				deps[dep] = deploymentJSON{Generation: d.generation, Created: d.created, Rotated: d.rotated, Check: b64(d.check), Grant: b64(d.grant)}
			}
			retired := make([]retiredJSON, 0, len(sec.retired))
			for _, r := range sec.retired {
				retired = append(retired, retiredJSON{Deployment: r.deployment, Generation: r.generation, Check: b64(r.check), Retired: r.date, Reason: r.reason})
			}
			a.Deployments, a.Retired = &deps, &retired
		}
		f.Apps[name] = a
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&f); err != nil { // Encode ends with a newline
		return nil, fmt.Errorf("encoding vault: %w", err)
	}
	return buf.Bytes(), nil
}

// Load reads and parses the vault file at path. It follows symbolic links,
// refuses anything but a regular file (a FIFO cannot hang it) and reads at
// most MaxFileSize bytes. Errors name the path.
func Load(path string) (*Vault, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, fmt.Errorf("reading vault %q: %w", path, err)
	}
	v, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("vault %q: %w", path, err)
	}
	return v, nil
}

func readBounded(path string) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, unwrapPathError(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file but %s", FileKind(fi.Mode()))
	}
	if fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("file is %d bytes, over the limit of %d", fi.Size(), MaxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, unwrapPathError(err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("file is over the limit of %d bytes", MaxFileSize)
	}
	return data, nil
}

// unwrapPathError drops the *os.PathError's own copy of the path, which the
// caller's message already quotes.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// FileKind names a file type for an error message: "a FIFO", "a
// directory", and so on.
func FileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "a " + m.Type().String() + " file"
}
