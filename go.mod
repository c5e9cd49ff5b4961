module github.com/ov-init/ov-init

go 1.26.8

require (
	github.com/alecthomas/kong v1.17.0
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0
	golang.org/x/term v0.48.0
)
