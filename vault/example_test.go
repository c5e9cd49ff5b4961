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
	// ov writes it atomically (internal/atomicfile); any write will do here.
	data, err := v.Marshal()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		log.Fatal(err)
	}

	// ov auth derive-machine-key --app web
	machineKey, err := v.AppKey(root, "web")
	if err != nil {
		log.Fatal(err)
	}
	defer clear(machineKey)

	// ov-init: no password, only the machine key.
	loaded, err := vault.Load(path)
	if err != nil {
		log.Fatal(err)
	}
	scoped, err := loaded.Scoped("web", machineKey)
	if err != nil {
		log.Fatal(err)
	}
	secrets, err := loaded.Open("web", machineKey, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer vault.WipeAll(secrets)
	fmt.Println("scoped:", scoped)
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
	// scoped: true
	// DB_PASSWORD is 7 bytes
	// key app: web
	// machine key belongs to app "web", not "api"
}
