package vault

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"

	"golang.org/x/crypto/chacha20poly1305"
)

// HKDF info labels, HMAC messages and associated-data labels. Each is used
// for one purpose only; SPEC.md lists them.
const (
	// infoAppKey + app + "/" + decimal epoch derives an app key from the root key.
	infoAppKey = "ov/v1/app/"
	// infoValueKey, infoMACKey and infoCheckKey derive an app's subkeys from its app key.
	infoValueKey = "ov/v1/value-key"
	infoMACKey   = "ov/v1/mac-key"
	infoCheckKey = "ov/v1/check-key"
	// infoRootCheckKey derives the root check key from the root key.
	infoRootCheckKey = "ov/v1/root-check-key"
	// infoTableKey derives the table key (format 2) from the root key.
	infoTableKey = "ov/v2/table-key"

	// msgCheck + app + "/" + decimal epoch is the message of an app's check value.
	msgCheck = "ov/v1/check/"
	// msgRootCheck is the message of the root check value.
	msgRootCheck = "ov/v1/root-check"

	// labelRootAAD, labelValueAAD and labelMAC open the length-prefixed
	// encodings of the root key's AAD, a value's AAD and an app's MAC input.
	labelRootAAD  = "ov/v1/root-wrap"
	labelValueAAD = "ov/v1/value"
	labelMAC      = "ov/v1/entries"
	// labelTable opens the encoding of the table of apps (format 2).
	labelTable = "ov/v2/table"
	// labelExport opens the encoding of an export's table (format 2): its
	// one app. Another label than labelTable, so that an export's table_mac
	// never verifies as the whole vault's.
	labelExport = "ov/v2/export"
)

// hkdfKey is HKDF-SHA256 with an empty salt and a KeySize output.
func hkdfKey(secret []byte, info string) ([]byte, error) {
	if len(secret) != KeySize {
		return nil, fmt.Errorf("key must be exactly %d bytes, not %d", KeySize, len(secret))
	}
	k, err := hkdf.Key(sha256.New, secret, nil, info, KeySize)
	if err != nil {
		return nil, fmt.Errorf("deriving key: %w", err)
	}
	return k, nil
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// deriveAppKey returns the app key of app at epoch under root.
func deriveAppKey(root []byte, app string, epoch uint32) ([]byte, error) {
	return hkdfKey(root, infoAppKey+app+"/"+strconv.FormatUint(uint64(epoch), 10))
}

// appKeys are the subkeys of one app key. wipe zeroes them.
type appKeys struct {
	value, mac, check []byte
}

func deriveAppKeys(appKey []byte) (*appKeys, error) {
	k := new(appKeys)
	var err error
	if k.value, err = hkdfKey(appKey, infoValueKey); err != nil {
		return nil, err
	}
	if k.mac, err = hkdfKey(appKey, infoMACKey); err != nil {
		k.wipe()
		return nil, err
	}
	if k.check, err = hkdfKey(appKey, infoCheckKey); err != nil {
		k.wipe()
		return nil, err
	}
	return k, nil
}

func (k *appKeys) wipe() {
	clear(k.value)
	clear(k.mac)
	clear(k.check)
}

// checkValue is an app's check value under its check key.
func checkValue(checkKey []byte, app string, epoch uint32) []byte {
	return hmacSHA256(checkKey, []byte(msgCheck+app+"/"+strconv.FormatUint(uint64(epoch), 10)))
}

// appCheck is the check value of app at epoch when appKey is its app key.
func appCheck(appKey []byte, app string, epoch uint32) ([]byte, error) {
	ck, err := hkdfKey(appKey, infoCheckKey)
	if err != nil {
		return nil, err
	}
	defer clear(ck)
	return checkValue(ck, app, epoch), nil
}

// rootCheckValue lets a holder of a root key confirm it is this vault's.
func rootCheckValue(root []byte) ([]byte, error) {
	k, err := hkdfKey(root, infoRootCheckKey)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	return hmacSHA256(k, []byte(msgRootCheck)), nil
}

// appendField appends len(b) as a 4-byte big-endian integer, then b.
func appendField(dst []byte, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// rootAAD binds the file's format version and the KDF parameters to the
// wrapped root.
func rootAAD(version uint32, p KDFParams, salt []byte) []byte {
	b := appendField(nil, []byte(labelRootAAD))
	b = binary.BigEndian.AppendUint32(b, version)
	b = appendField(b, []byte(kdfAlg))
	b = binary.BigEndian.AppendUint32(b, p.Time)
	b = binary.BigEndian.AppendUint32(b, p.MemoryKiB)
	b = binary.BigEndian.AppendUint32(b, uint32(p.Threads))
	return appendField(b, salt)
}

// valueAAD binds a sealed value to the section format, its app, epoch and name.
func valueAAD(app string, epoch uint32, name string) []byte {
	b := appendField(nil, []byte(labelValueAAD))
	b = binary.BigEndian.AppendUint32(b, sectionFormat)
	b = appendField(b, []byte(app))
	b = binary.BigEndian.AppendUint32(b, epoch)
	return appendField(b, []byte(name))
}

// macInput encodes an app's name, epoch and sorted (name, sealed value) pairs.
func macInput(app string, epoch uint32, secrets map[string][]byte) []byte {
	names := make([]string, 0, len(secrets))
	for name := range secrets {
		names = append(names, name)
	}
	slices.Sort(names)
	b := appendField(nil, []byte(labelMAC))
	b = binary.BigEndian.AppendUint32(b, sectionFormat)
	b = appendField(b, []byte(app))
	b = binary.BigEndian.AppendUint32(b, epoch)
	b = binary.BigEndian.AppendUint32(b, uint32(len(names)))
	for _, name := range names {
		b = appendField(b, []byte(name))
		b = appendField(b, secrets[name])
	}
	return b
}

// appMAC is the MAC of an app's section under its MAC key.
func appMAC(macKey []byte, app string, epoch uint32, secrets map[string][]byte) []byte {
	return hmacSHA256(macKey, macInput(app, epoch, secrets))
}

// tableInput encodes the table of apps (format 2): the vault's generation,
// then every app, sorted by name, with its epoch, check value, MAC,
// deployments (sorted by name) and retired grants (oldest first).
func tableInput(generation uint32, apps map[string]*appSection) []byte {
	return tableEncoding(labelTable, generation, apps)
}

// exportInput is the table input of an export (SPEC.md, "Exports"): the
// same encoding as tableInput under labelExport.
func exportInput(generation uint32, apps map[string]*appSection) []byte {
	return tableEncoding(labelExport, generation, apps)
}

// tableEncoding encodes generation and apps after label.
func tableEncoding(label string, generation uint32, apps map[string]*appSection) []byte {
	names := make([]string, 0, len(apps))
	for name := range apps {
		names = append(names, name)
	}
	slices.Sort(names)
	b := appendField(nil, []byte(label))
	b = binary.BigEndian.AppendUint32(b, Version)
	b = binary.BigEndian.AppendUint32(b, generation)
	b = binary.BigEndian.AppendUint32(b, uint32(len(names)))
	for _, name := range names {
		sec := apps[name]
		b = appendField(b, []byte(name))
		b = binary.BigEndian.AppendUint32(b, sec.epoch)
		b = appendField(b, sec.check)
		b = appendField(b, sec.mac)
		deps := slices.Sorted(maps.Keys(sec.deployments))
		b = binary.BigEndian.AppendUint32(b, uint32(len(deps)))
		for _, dep := range deps {
			d := sec.deployments[dep]
			b = appendField(b, []byte(dep))
			b = binary.BigEndian.AppendUint32(b, d.generation)
			b = appendField(b, []byte(d.created))
			b = appendField(b, []byte(d.rotated))
			b = appendField(b, d.check)
			b = appendField(b, d.grant)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(sec.retired)))
		for _, r := range sec.retired {
			b = appendField(b, []byte(r.deployment))
			b = binary.BigEndian.AppendUint32(b, r.generation)
			b = appendField(b, r.check)
			b = appendField(b, []byte(r.date))
			b = appendField(b, []byte(r.reason))
		}
	}
	return b
}

// tableMAC is the MAC of the table of apps, at generation, under the root key.
func tableMAC(root []byte, generation uint32, apps map[string]*appSection) ([]byte, error) {
	return tableMACOf(root, tableInput(generation, apps))
}

// exportMAC is the table MAC of an export, under the root key.
func exportMAC(root []byte, generation uint32, apps map[string]*appSection) ([]byte, error) {
	return tableMACOf(root, exportInput(generation, apps))
}

func tableMACOf(root, input []byte) ([]byte, error) {
	k, err := hkdfKey(root, infoTableKey)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	return hmacSHA256(k, input), nil
}

// seal encrypts plaintext under key with a fresh random nonce and returns
// nonce || ciphertext || tag.
func seal(key, plaintext, aad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(plaintext)+chacha20poly1305.Overhead)
	if _, err := io.ReadFull(random, out); err != nil {
		return nil, fmt.Errorf("generating nonce: %w", err)
	}
	return aead.Seal(out, out, plaintext, aad), nil
}

// errOpen is open's only failure to authenticate; callers map it to their
// own opaque error.
var errOpen = errors.New("message authentication failed")

// open reverses seal. Every failure to authenticate is errOpen.
func open(key, sealed, aad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
		return nil, errOpen
	}
	nonce, ct := sealed[:chacha20poly1305.NonceSizeX], sealed[chacha20poly1305.NonceSizeX:]
	pt, err := aead.Open(nil, nonce, ct, aad)
	if err != nil {
		return nil, errOpen
	}
	return pt, nil
}
