package vault

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestRoundTripKeepsAppsSecretsAndKeys(t *testing.T) {
	v, root := newTestVault(t)
	v2 := reparse(t, v)
	if got := v2.Apps(); !slices.Equal(got, []string{"api", "web"}) {
		t.Fatalf("Apps() = %q", got)
	}
	names, err := v2.SecretNames("web")
	if err != nil || !slices.Equal(names, []string{"API_TOKEN", "DB_PASSWORD"}) {
		t.Fatalf("SecretNames(web) = %q, %v", names, err)
	}
	root2, err := v2.Unlock(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root.Bytes(), root2.Bytes()) {
		t.Fatal("unlocked root differs from the created one")
	}
	want := map[string]string{"API_TOKEN": "tok-web", "DB_PASSWORD": "hunter2"}
	if got := secretsMap(t, v2, "web", root2.Bytes()); !maps.Equal(got, want) {
		t.Fatalf("Open(web) = %v", got)
	}
	a, _ := v.Marshal()
	b, _ := v2.Marshal()
	if !bytes.Equal(a, b) {
		t.Fatal("Marshal(Parse(Marshal(v))) differs from Marshal(v)")
	}
	if !bytes.HasSuffix(a, []byte("}\n")) {
		t.Fatal("Marshal output does not end with a newline")
	}
}

func TestUnlockWithWrongPasswordIsErrWrongPassword(t *testing.T) {
	v, _ := newTestVault(t)
	for _, pw := range []string{"", "wrong", string(testPassword) + " "} {
		_, err := v.Unlock([]byte(pw))
		if err != ErrWrongPassword {
			t.Fatalf("Unlock(%q) = %v, want exactly ErrWrongPassword", pw, err)
		}
	}
}

func TestKDFParamsCannotBeDowngraded(t *testing.T) {
	for _, edit := range []func(*Vault){
		func(v *Vault) { v.kdf.Time++ },
		func(v *Vault) { v.kdf.MemoryKiB += 8 },
		func(v *Vault) { v.kdf.Threads++ },
	} {
		v, _ := newTestVault(t)
		edit(v)
		if _, err := reparse(t, v).Unlock(testPassword); err != ErrWrongPassword {
			t.Fatalf("Unlock after changing the KDF params = %v, want ErrWrongPassword", err)
		}
	}
}

func TestWrappedRootFlippedByteIsErrWrongPassword(t *testing.T) {
	v, _ := newTestVault(t)
	v.wrappedRoot[30] ^= 1
	if _, err := v.Unlock(testPassword); err != ErrWrongPassword {
		t.Fatalf("Unlock = %v, want ErrWrongPassword", err)
	}
}

func TestAlteredRootCheckIsErrTampered(t *testing.T) {
	v, _ := newTestVault(t)
	v.rootCheck[0] ^= 1
	_, err := v.Unlock(testPassword)
	wantErrIs(t, err, ErrTampered)
}

func TestNewRefusesEmptyPassword(t *testing.T) {
	if _, _, err := New(nil); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}

func TestChangePasswordKeepsMachineKeysWorking(t *testing.T) {
	v, root := newTestVault(t)
	appKey := mustAppKey(t, v, root, "web")
	oldSalt := slices.Clone(v.salt)
	newPW := []byte("a new password")
	if err := v.ChangePassword(root, newPW); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(oldSalt, v.salt) {
		t.Fatal("ChangePassword kept the salt")
	}
	v = reparse(t, v)
	if _, err := v.Unlock(testPassword); err != ErrWrongPassword {
		t.Fatalf("old password: Unlock = %v, want ErrWrongPassword", err)
	}
	root2, err := v.Unlock(newPW)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root2.Bytes(), root.Bytes()) {
		t.Fatal("ChangePassword changed the root key")
	}
	if k := mustAppKey(t, v, root2, "web"); !bytes.Equal(k, appKey) {
		t.Fatal("ChangePassword changed the app key")
	}
	if got := secretsMap(t, v, "web", appKey); got["DB_PASSWORD"] != "hunter2" {
		t.Fatalf("old app key after ChangePassword: %v", got)
	}
	if got := secretsMap(t, v, "api", root.Bytes()); got["TOKEN"] != "tok-api" {
		t.Fatalf("old root key after ChangePassword: %v", got)
	}
}

func TestChangePasswordRefusesEmptyPassword(t *testing.T) {
	v, root := newTestVault(t)
	if err := v.ChangePassword(root, nil); err == nil {
		t.Fatal("ChangePassword(nil) succeeded")
	}
}

func TestRootOfAnotherVaultIsRefusedByEveryChange(t *testing.T) {
	v, _ := newTestVault(t)
	_, other := newTestVault(t)
	before, _ := v.Marshal()
	errs := map[string]error{
		"ChangePassword": v.ChangePassword(other, []byte("x")),
		"CreateApp":      v.CreateApp(other, "new"),
		"RemoveApp":      v.RemoveApp(other, "web"),
		"RotateApp":      v.RotateApp(other, "web"),
		"SetSecret":      v.SetSecret(other, "web", "X", []byte("y")),
		"RemoveSecret":   v.RemoveSecret(other, "web", "DB_PASSWORD"),
		"Upgrade":        v.Upgrade(other),
		"nil root":       v.CreateApp(nil, "new"),
	}
	_, errs["AppKey"] = v.AppKey(other, "web")
	for op, err := range errs {
		if !errors.Is(err, errNotThisRoot) {
			t.Errorf("%s with another vault's root = %v, want %v", op, err, errNotThisRoot)
		}
	}
	if after, _ := v.Marshal(); !bytes.Equal(before, after) {
		t.Fatal("a refused change altered the vault")
	}
}

func TestCreateAppRefusesExistingAndBadNames(t *testing.T) {
	v, root := newTestVault(t)
	err := v.CreateApp(root, "web")
	wantErrIs(t, err, ErrAppExists)
	if !strings.Contains(err.Error(), `"web"`) {
		t.Fatalf("error does not quote the app: %v", err)
	}
	for _, bad := range []string{"", "Web", "-web", ".web", "we/b", "we b", strings.Repeat("a", 64), "wéb"} {
		err := v.CreateApp(root, bad)
		if err == nil || !strings.Contains(err.Error(), "invalid app name "+quote(bad)) {
			t.Errorf("CreateApp(%q) = %v, want an error quoting it", bad, err)
		}
	}
}

func quote(s string) string { return strconv.Quote(s) }

func TestRemoveAppDeletesIt(t *testing.T) {
	v, root := newTestVault(t)
	if err := v.RemoveApp(root, "api"); err != nil {
		t.Fatal(err)
	}
	if v.HasApp("api") || !v.HasApp("web") {
		t.Fatalf("Apps() = %q", v.Apps())
	}
	wantErrIs(t, v.RemoveApp(root, "api"), ErrNoSuchApp)
}

func TestRotateAppInvalidatesOldAppKeyAndKeepsValues(t *testing.T) {
	v, root := newTestVault(t)
	oldKey := mustAppKey(t, v, root, "web")
	apiKey := mustAppKey(t, v, root, "api")
	if err := v.RotateApp(root, "web"); err != nil {
		t.Fatal(err)
	}
	v = reparse(t, v)
	if e, _ := v.Epoch("web"); e != 2 {
		t.Fatalf("epoch after rotate = %d, want 2", e)
	}
	_, err := v.Open("web", oldKey, nil)
	wantErrIs(t, err, ErrWrongKey)
	if !strings.Contains(err.Error(), `ov app rotate web`) {
		t.Fatalf("ErrWrongKey text does not hint at rotation: %v", err)
	}
	newKey := mustAppKey(t, v, root, "web")
	if bytes.Equal(newKey, oldKey) {
		t.Fatal("rotation kept the app key")
	}
	want := map[string]string{"API_TOKEN": "tok-web", "DB_PASSWORD": "hunter2"}
	if got := secretsMap(t, v, "web", newKey); !maps.Equal(got, want) {
		t.Fatalf("after rotate, app key opens %v", got)
	}
	if got := secretsMap(t, v, "web", root.Bytes()); !maps.Equal(got, want) {
		t.Fatalf("after rotate, root key opens %v", got)
	}
	if got := secretsMap(t, v, "api", apiKey); got["TOKEN"] != "tok-api" {
		t.Fatal("rotating web disturbed api")
	}
}

func TestRotateAppRefusesTamperedSection(t *testing.T) {
	v, root := newTestVault(t)
	delete(v.apps["web"].secrets, "API_TOKEN")
	wantErrIs(t, v.RotateApp(root, "web"), ErrTampered)
	if e, _ := v.Epoch("web"); e != 1 {
		t.Fatal("a refused rotation changed the epoch")
	}
}

func TestSetSecretReplacesAndRemoveSecretDeletes(t *testing.T) {
	v, root := newTestVault(t)
	mustSet(t, v, root, "web", "DB_PASSWORD", "new")
	mustSet(t, v, root, "web", "EMPTY", "")
	if err := v.RemoveSecret(root, "web", "API_TOKEN"); err != nil {
		t.Fatal(err)
	}
	v = reparse(t, v)
	want := map[string]string{"DB_PASSWORD": "new", "EMPTY": ""}
	if got := secretsMap(t, v, "web", root.Bytes()); !maps.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestRemoveSecretOfAbsentNameIsErrNoSuchSecret(t *testing.T) {
	v, root := newTestVault(t)
	wantErrIs(t, v.RemoveSecret(root, "web", "NOPE"), ErrNoSuchSecret)
}

func TestSetSecretVerifiesTheMACBeforeReMACing(t *testing.T) {
	v, root := newTestVault(t)
	// An attacker deletes an entry; a later set must not launder the deletion.
	delete(v.apps["web"].secrets, "API_TOKEN")
	wantErrIs(t, v.SetSecret(root, "web", "NEW", []byte("x")), ErrTampered)
	wantErrIs(t, v.RemoveSecret(root, "web", "DB_PASSWORD"), ErrTampered)
	if _, ok := v.apps["web"].secrets["NEW"]; ok {
		t.Fatal("refused SetSecret stored the value")
	}
}

func TestSetSecretRefusesBadNamesAndValues(t *testing.T) {
	v, root := newTestVault(t)
	for _, bad := range []string{"", "1X", "A-B", "A B", "A=B", "É", strings.Repeat("A", 256)} {
		err := v.SetSecret(root, "web", bad, []byte("v"))
		if err == nil || !strings.Contains(err.Error(), "invalid secret name "+quote(bad)) {
			t.Errorf("SetSecret(%q) = %v, want an error quoting it", bad, err)
		}
	}
	if err := v.SetSecret(root, "web", strings.Repeat("A", 255), []byte("v")); err != nil {
		t.Errorf("255-byte name refused: %v", err)
	}
	err := v.SetSecret(root, "web", "NUL", []byte("qzq\x00xvx"))
	if err == nil || !strings.Contains(err.Error(), "NUL") || strings.Contains(err.Error(), "qzq") || strings.Contains(err.Error(), "xvx") {
		t.Errorf("SetSecret with a NUL byte = %v", err)
	}
	if err := v.SetSecret(root, "web", "BIG", make([]byte, MaxValueSize+1)); err == nil {
		t.Error("SetSecret accepted a value over MaxValueSize")
	}
	if err := v.SetSecret(root, "web", "BIG", bytes.Repeat([]byte("x"), MaxValueSize)); err != nil {
		t.Errorf("SetSecret refused a value of MaxValueSize: %v", err)
	}
	wantErrIs(t, v.SetSecret(root, "nope", "X", []byte("v")), ErrNoSuchApp)
}

func TestMaxValueSizeFitsOneExecveString(t *testing.T) {
	const maxArgStrlen = 32 * 4096 // Linux MAX_ARG_STRLEN
	if n := MaxSecretNameLen + len("=") + MaxValueSize + len("\x00"); n > maxArgStrlen {
		t.Fatalf("NAME=VALUE\\0 can be %d bytes, over MAX_ARG_STRLEN %d", n, maxArgStrlen)
	}
}

func TestZeroVaultIsRefusedNotPanicking(t *testing.T) {
	var v Vault
	if _, err := v.Marshal(); err == nil {
		t.Error("Marshal of the zero Vault succeeded")
	}
	if _, err := v.Unlock(testPassword); err == nil {
		t.Error("Unlock of the zero Vault succeeded")
	}
	if _, err := v.Open("web", make([]byte, KeySize), nil); err == nil {
		t.Error("Open of the zero Vault succeeded")
	}
	if len(v.Apps()) != 0 || v.HasApp("web") {
		t.Error("zero Vault has apps")
	}
}

func TestWipeZeroesValuesAndRoot(t *testing.T) {
	v, root := newTestVault(t)
	ss, err := v.Open("web", root.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	vals := make([][]byte, len(ss))
	for i := range ss {
		vals[i] = ss[i].Value
	}
	WipeAll(ss)
	for i, b := range vals {
		if ss[i].Value != nil || bytes.ContainsFunc(b, func(r rune) bool { return r != 0 }) {
			t.Fatalf("secret %d not wiped", i)
		}
	}
	k := root.Bytes()
	if !root.hasKEK || root.kek == [KeySize]byte{} {
		t.Fatal("New's root does not hold the KEK")
	}
	root.Wipe()
	if !bytes.Equal(k, make([]byte, KeySize)) {
		t.Fatal("Root.Wipe left key bytes (Bytes must alias the key)")
	}
	if root.hasKEK || root.kek != [KeySize]byte{} {
		t.Fatal("Root.Wipe left the KEK")
	}
}
