package toolchain

import "strings"

// readme is a new project's README.md: how to test, build and deploy it.
func readme(name, lang string) string {
	var layout, test string
	switch lang {
	case Go:
		layout = "main.go (the transform), main_test.go (its test with transformtest), go.mod\n" +
			"(the SDK resolves to .weir/sdk/go: no network needed beyond the Go module proxy)"
		test = "go test ./...                 # or: weir transform build --test"
	case Rust:
		layout = "src/lib.rs (the transform and its tests with weir_transform::testing);\n" +
			"the weir_transform crate is .weir/sdk/rust (standard library only, built with rustc: no cargo)"
		test = "weir transform build --test   # rustc --test, run natively"
	case TS:
		layout = "assembly/index.ts (the transform), assembly/index.test.ts (its tests with\n" +
			"weir-transform/assembly/testing), package.json pinning assemblyscript; the SDK is .weir/sdk/ts"
		test = "weir transform build --test   # asc, then the test* exports run in Node.js"
	}
	r := strings.NewReplacer("NAME", name, "LAYOUT", layout, "TEST", test, "LANG", lang)
	return r.Replace(`# NAME

A Weir transform (LANG), created by ` + "`weir transform init --lang LANG NAME`" + `. It
upper-cases each record's value and sends records with an empty value to the
pipeline's dead-letter topic. Layout: LAYOUT.

    TEST
    weir transform build          # → NAME.wasm, with its size
    echo '{"key":"k","value":"hello"}' | weir transform test NAME.wasm

Deploy it between two topics (creates the pipeline, or upgrades it to the
new module version when it exists, keeping its position and state):

    weir topic create greetings && weir topic create greetings-loud
    weir transform deploy NAME --pipeline shout --input greetings --output greetings-loud
    weir produce greetings hello && weir consume greetings-loud --from earliest --max 1
    weir transform logs shout

` + "`.weir/`" + ` holds the SDK copy and project.json (the ABI version it speaks);
` + "`weir transform init --update-sdk`" + ` refreshes it from a newer weir. See the Weir
docs: transforms.md and tutorial-transform.md.
`)
}
