package shellquote_test

import (
	"fmt"

	"github.com/ov-init/ov-init/internal/shellquote"
)

func ExampleQuote() {
	for _, path := range []string{"/run/secrets/machine.kek", "/keys/my key", "/keys/it's", "/keys/a\nb"} {
		fmt.Println("chmod 600 " + shellquote.Quote(path))
	}
	// Output:
	// chmod 600 /run/secrets/machine.kek
	// chmod 600 '/keys/my key'
	// chmod 600 '/keys/it'\''s'
	// chmod 600 $'/keys/a\x0ab'
}
