package vault

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
)

// exportedVault is newTestVault with a deployment "edge" of web, and the
// export of web: what ov vault export --app web writes.
func exportedVault(t *testing.T) (v *Vault, root *Root, edge []byte, exp *Vault) {
	t.Helper()
	v, root = newTestVault(t)
	edge, _, err := v.DeploymentKey(root, "web", "edge")
	if err != nil {
		t.Fatal(err)
	}
	before := marshal(t, v)
	exp, err = v.Export(root, "web")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(marshal(t, v), before) {
		t.Fatal("Export changed the vault")
	}
	return v, root, edge, reparse(t, exp)
}

func TestExportHoldsOneAppAndNoWrappedRoot(t *testing.T) {
	v, root, edge, exp := exportedVault(t)
	data := marshal(t, exp)
	for _, absent := range []string{`"kdf"`, `"wrapped_root"`, `"salt"`, `"api"`, `"TOKEN"`} {
		if bytes.Contains(data, []byte(absent)) {
			t.Errorf("the export holds %s:\n%s", absent, data)
		}
	}
	if exp.Exported() != "web" || v.Exported() != "" {
		t.Errorf("Exported() = %q (vault %q)", exp.Exported(), v.Exported())
	}
	if exp.Generation() != v.Generation() || !bytes.Equal(exp.RootCheck(), v.RootCheck()) {
		t.Error("the export's generation or root_check differs from the vault's")
	}
	if got := exp.Apps(); len(got) != 1 || got[0] != "web" {
		t.Errorf("Apps() = %q", got)
	}
	want := map[string]string{"DB_PASSWORD": "hunter2", "API_TOKEN": "tok-web"}
	// Every kind of machine key of web opens it as it opens the vault.
	for what, key := range map[string][]byte{"deployment key": edge, "legacy app key": mustAppKey(t, v, root, "web"), "root key": root.Bytes()} {
		if got := secretsMap(t, exp, "web", key); !maps.Equal(got, want) {
			t.Errorf("%s opened %v, want %v", what, got, want)
		}
	}
	_, err := exp.Open("api", root.Bytes(), nil)
	wantErrIs(t, err, ErrNoSuchApp)
	if err == nil || !strings.Contains(err.Error(), `export of app "web" only`) {
		t.Errorf("Open(api) on an export of web = %v, want it to say the file is an export of web", err)
	}
}

func TestExportIsNeitherUnlockedNorWritten(t *testing.T) {
	_, root, _, exp := exportedVault(t)
	_, err := exp.Unlock(testPassword)
	wantErrIs(t, err, ErrExport)
	before := marshal(t, exp)
	_, err = exp.Export(root, "web")
	wantErrIs(t, err, ErrExport)
	_, err = exp.RotateDeployment(root, "web", "edge")
	wantErrIs(t, err, ErrExport)
	for op, err := range map[string]error{
		"SetSecret":        exp.SetSecret(root, "web", "NEW", []byte("x")),
		"RemoveSecret":     exp.RemoveSecret(root, "web", "API_TOKEN"),
		"RotateApp":        exp.RotateApp(root, "web"),
		"CreateApp":        exp.CreateApp(root, "new"),
		"RemoveApp":        exp.RemoveApp(root, "web"),
		"ChangePassword":   exp.ChangePassword(root, []byte("new password")),
		"Upgrade":          exp.Upgrade(root),
		"RevokeDeployment": exp.RevokeDeployment(root, "web", "edge"),
	} {
		if !errors.Is(err, ErrExport) {
			t.Errorf("%s on an export = %v, want ErrExport", op, err)
		}
	}
	if _, _, err := exp.DeploymentKey(root, "web", "new"); !errors.Is(err, ErrExport) {
		t.Errorf("granting a deployment on an export = %v, want ErrExport", err)
	}
	if !bytes.Equal(marshal(t, exp), before) {
		t.Error("a refused write changed the export")
	}
}

// TestExportTableIsNotTheVaultsTable: an export's table MAC is computed
// under its own label, so an export dressed up as a vault (the vault's
// kdf and wrapped root pasted in, "export" dropped) does not verify: it
// cannot pass for a vault from which every other app was removed. Nor
// does a vault cut down to one app pass for an export of it.
func TestExportTableIsNotTheVaultsTable(t *testing.T) {
	v, root, _, exp := exportedVault(t)
	full := marshal(t, v)
	var header map[string]any
	editJSON(t, full, func(m map[string]any) { header = m })
	dressed := editJSON(t, marshal(t, exp), func(m map[string]any) {
		delete(m, "export")
		m["kdf"], m["wrapped_root"] = header["kdf"], header["wrapped_root"]
	})
	w := mustParse(t, dressed)
	if w.Exported() != "" {
		t.Fatal("the dressed-up export parsed as an export")
	}
	_, err := w.Unlock(testPassword)
	wantTableAltered(t, "Unlock(export dressed as a vault)", err)
	_, err = w.Open("web", root.Bytes(), nil)
	wantTableAltered(t, "Open(export dressed as a vault, root key)", err)

	cut := editJSON(t, full, func(m map[string]any) {
		delete(m, "kdf")
		delete(m, "wrapped_root")
		delete(obj(m, "apps"), "api")
		m["export"] = "web"
	})
	_, err = mustParse(t, cut).Open("web", root.Bytes(), nil)
	wantTableAltered(t, "Open(vault cut down to an export, root key)", err)
}

// TestExportOfAForgedOrRolledBackSectionIsRefused: Export verifies the
// vault's table first, so it never re-authenticates a section forged with
// a revoked app key; and a section pasted into an export fails the
// export's table MAC under the root key.
func TestExportOfAForgedOrRolledBackSectionIsRefused(t *testing.T) {
	v, root, oldWeb, _ := rotatedVault(t)
	forged := mustParse(t, pasteSection(t, marshal(t, v), "web", forgeSection(t, oldWeb, "web", 1, forgedValues)))
	_, err := forged.Export(root, "web")
	wantTableAltered(t, "Export(forged vault)", err)

	exp, err := v.Export(root, "web")
	if err != nil {
		t.Fatal(err)
	}
	pasted := mustParse(t, pasteSection(t, marshal(t, exp), "web", forgeSection(t, oldWeb, "web", 1, forgedValues)))
	_, err = pasted.Open("web", root.Bytes(), nil)
	wantTableAltered(t, "Open(export with a forged section, root key)", err)
	// The current key pins its epoch: the forged epoch-1 section is not its.
	_, err = pasted.Open("web", mustAppKey(t, v, root, "web"), nil)
	wantErrIs(t, err, ErrWrongKey)
}

func TestExportOfAFormat1VaultNeedsAnUpgrade(t *testing.T) {
	v, root := newTestVault(t)
	toV1(t, v, root)
	_, err := mustParse(t, marshal(t, v)).Export(root, "web")
	wantErrIs(t, err, ErrExportFormat1)
}

// TestExportVerifiesTheSectionsEntries: the table MAC covers a section's
// MAC, not its entries; Export checks them too, so a host never gets a
// section that fails there.
func TestExportVerifiesTheSectionsEntries(t *testing.T) {
	v, root := newTestVault(t)
	sec := v.apps["web"]
	sec.secrets["DB_PASSWORD"], sec.secrets["API_TOKEN"] = sec.secrets["API_TOKEN"], sec.secrets["DB_PASSWORD"]
	_, err := v.Export(root, "web")
	wantErrIs(t, err, ErrTampered)
}

// TestKeyMissingFromAnExportSaysWhen: a deployment granted after the
// export was made is not in it; the error says so (and that the file is
// an export of which generation), so that nobody derives another key.
func TestKeyMissingFromAnExportSaysWhen(t *testing.T) {
	v, root, _, exp := exportedVault(t)
	late, _, err := v.DeploymentKey(root, "web", "late")
	if err != nil {
		t.Fatal(err)
	}
	_, err = exp.Open("web", late, nil)
	wantErrIs(t, err, ErrWrongKey)
	wantErrIs(t, err, ErrExport)
	if want := fmt.Sprintf("export of app \"web\" made at generation %d", exp.Generation()); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Open(key granted after the export) = %v, want it to say %q", err, want)
	}
	_, err = v.Open("web", make([]byte, KeySize), nil)
	if errors.Is(err, ErrExport) {
		t.Errorf("a vault's wrong-key error speaks of an export: %v", err)
	}
}

func TestVerifyExport(t *testing.T) {
	v, root, _, exp := exportedVault(t)
	if err := exp.VerifyExport(root); err != nil {
		t.Fatalf("VerifyExport(genuine) = %v", err)
	}
	if err := v.VerifyExport(root); err == nil {
		t.Error("VerifyExport(a vault) = nil")
	}
	_, other := newTestVault(t)
	if err := exp.VerifyExport(other); err == nil {
		t.Error("VerifyExport(root of another vault) = nil")
	}
	bumped := mustParse(t, editJSON(t, marshal(t, exp), func(m map[string]any) { m["generation"] = exp.Generation() + 5 }))
	wantTableAltered(t, "VerifyExport(generation changed)", bumped.VerifyExport(root))
}

func TestParseRefusesMalformedExports(t *testing.T) {
	_, _, _, exp := exportedVault(t)
	good := marshal(t, exp)
	for name, c := range map[string]struct {
		edit func(m map[string]any)
		want string
	}{
		"another app too":      {func(m map[string]any) { obj(m, "apps")["api"] = obj(m, "apps", "web") }, `must hold that app and no other`},
		"names an absent app":  {func(m map[string]any) { m["export"] = "api" }, `must hold that app and no other`},
		"invalid app name":     {func(m map[string]any) { m["export"] = "Web\n" }, "export: "},
		"empty app name":       {func(m map[string]any) { m["export"] = "" }, "export: "},
		"not a string":         {func(m map[string]any) { m["export"] = 1 }, `"export" must be a string`},
		"a wrapped root":       {func(m map[string]any) { m["wrapped_root"] = b64(sealedRootSize) }, `unknown field "wrapped_root"`},
		"a kdf":                {func(m map[string]any) { m["kdf"] = map[string]any{} }, `unknown field "kdf"`},
		"no table_mac":         {func(m map[string]any) { delete(m, "table_mac") }, `missing field "table_mac"`},
		"no generation":        {func(m map[string]any) { delete(m, "generation") }, `missing field "generation"`},
		"format 1":             {func(m map[string]any) { m["version"] = 1 }, `unknown field`},
		"no deployments (v1)":  {func(m map[string]any) { delete(obj(m, "apps", "web"), "deployments") }, `missing field "deployments"`},
		"a null export":        {func(m map[string]any) { m["export"] = nil }, `"export" must be a string`},
		"EXPORT is not export": {func(m map[string]any) { m["EXPORT"] = m["export"]; delete(m, "export") }, `unknown field "EXPORT"`},
		"a vault's root_check": {func(m map[string]any) { delete(m, "root_check") }, `missing field "root_check"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(editJSON(t, good, c.edit))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Parse = %v, want an error containing %q", err, c.want)
			}
		})
	}
}
