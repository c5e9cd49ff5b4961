package vault_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/ov-init/ov-init/vault"
)

// Example shows the life of a vault: ov creates it and seals a secret,
// derives a scoped machine key, and ov-init opens the app with that key.
func Example() {
	dir, err := os.MkdirTemp("", "vault-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "vault.json")

	// ov app create web; ov secret set DB_PASSWORD --app web
	v, root, err := vault.New([]byte("master password"))
	if err != nil {
		log.Fatal(err)
	}
	defer root.Wipe()
	if err := v.CreateApp(root, "web"); err != nil {
		log.Fatal(err)
	}
	if err := v.SetSecret(root, "web", "DB_PASSWORD", []byte("hunter2")); err != nil {
		log.Fatal(err)
	}
	// ov auth derive-machine-key --app web: a grant for deployment "default"
	machineKey, _, err := v.DeploymentKey(root, "web", vault.DefaultDeployment)
	if err != nil {
		log.Fatal(err)
	}
	defer clear(machineKey)

	// ov writes it atomically (internal/atomicfile); any write will do here.
	data, err := v.Marshal()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		log.Fatal(err)
	}

	// ov-init: no password, only the machine key.
	loaded, err := vault.Load(path)
	if err != nil {
		log.Fatal(err)
	}
	secrets, err := loaded.Open("web", machineKey, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer vault.WipeAll(secrets)
	for _, s := range secrets {
		fmt.Printf("%s is %d bytes\n", s.Name, len(s.Value))
	}

	// The key of web does not open another app.
	if err := v.CreateApp(root, "api"); err != nil {
		log.Fatal(err)
	}
	_, err = v.Open("api", machineKey, nil)
	var wrong *vault.WrongAppError
	if errors.As(err, &wrong) {
		fmt.Println("key app:", wrong.KeyApp)
		fmt.Println(err)
	}
	// Output:
	// DB_PASSWORD is 7 bytes
	// key app: web
	// machine key belongs to deployment "default" of app "web", not to app "api"
}
