package toolchain

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/weir-broker/weir/sdk"
	"github.com/weir-broker/weir/sdk/abi"
)

// Languages a project can be written in.
const (
	Go   = "go"
	Rust = "rust"
	TS   = "ts"
)

// Langs lists the languages, in the order the docs give them.
func Langs() []string { return []string{Go, Rust, TS} }

// SDKModule is the Go SDK's module path.
const SDKModule = "github.com/weir-broker/weir/sdk"

// ErrToolMissing is wrapped by the errors of builds whose compiler or
// runtime is not installed.
var ErrToolMissing = errors.New("toolchain missing")

// ErrABIMismatch is wrapped when a project's SDK speaks another ABI version
// than this weir.
var ErrABIMismatch = errors.New("abi version mismatch")

// Project is a transform project directory.
type Project struct {
	Dir  string // absolute
	Name string // the module name: the directory's base name unless set
	Lang string // Go, Rust or TS
	// SDK is the Rust crate or AssemblyScript package directory to build
	// against: Dir/.weir/sdk/<lang> unless set (the repository's examples
	// use sdk/rust and sdk/ts). Unused for Go, whose go.mod says.
	SDK string
	// ABIVersion is the ABI version of the project's SDK copy, 0 if unknown.
	ABIVersion uint32
}

// meta is .weir/project.json.
type meta struct {
	Lang       string `json:"lang"`
	Name       string `json:"name"`
	ABIVersion uint32 `json:"abi_version"`
}

const metaFile = ".weir/project.json"

// Open reads the project in dir: its .weir/project.json, or else its
// language from its files (go.mod, src/lib.rs, assembly/index.ts).
func Open(dir string) (Project, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Project{}, err
	}
	if st, err := os.Stat(abs); err != nil {
		return Project{}, err
	} else if !st.IsDir() {
		return Project{}, fmt.Errorf("%s is not a directory", abs)
	}
	p := Project{Dir: abs, Name: filepath.Base(abs)}
	if b, err := os.ReadFile(filepath.Join(abs, metaFile)); err == nil {
		var m meta
		if err := json.Unmarshal(b, &m); err != nil {
			return p, fmt.Errorf("%s: %w", metaFile, err)
		}
		p.Lang, p.ABIVersion = m.Lang, m.ABIVersion
		if m.Name != "" {
			p.Name = m.Name
		}
	} else {
		for _, c := range []struct{ file, lang string }{{"go.mod", Go}, {"src/lib.rs", Rust}, {"assembly/index.ts", TS}} {
			if _, err := os.Stat(filepath.Join(abs, c.file)); err == nil {
				p.Lang = c.lang
				break
			}
		}
	}
	if !validLang(p.Lang) {
		return p, fmt.Errorf("%s is not a transform project: no %s, go.mod, src/lib.rs or assembly/index.ts (create one with weir transform init)", abs, metaFile)
	}
	if p.Lang != Go {
		p.SDK = filepath.Join(abs, ".weir", "sdk", p.Lang)
	}
	return p, nil
}

func validLang(l string) bool {
	for _, x := range Langs() {
		if l == x {
			return true
		}
	}
	return false
}

// CheckABI fails when the project's SDK copy speaks an ABI version this
// weir (whose broker-side validation is the same code) does not run:
// versions abi.MinVersion to abi.Version are accepted.
func (p Project) CheckABI() error {
	if p.ABIVersion != 0 && (p.ABIVersion < abi.MinVersion || p.ABIVersion > abi.Version) {
		return fmt.Errorf("%w: the project's SDK (.weir/sdk) speaks ABI %d, this weir %d to %d: run `weir transform init --update-sdk` in %s",
			ErrABIMismatch, p.ABIVersion, abi.MinVersion, abi.Version, p.Dir)
	}
	return nil
}

// sdkABI is the ABI version the SDK of lang embedded in this weir speaks:
// the Go SDK the newest (event time needs version 2), the Rust and
// AssemblyScript SDKs version 1.
func sdkABI(lang string) uint32 {
	if lang == "go" {
		return abi.Version
	}
	return abi.MinVersion
}

// Init writes a new project of lang into dir (created if needed): the
// language's sample transform (upper-case values, dead-letter empty ones),
// its test, a README, .gitignore and .weir/ with the SDK copy. It refuses
// to overwrite any file and returns the files it wrote, relative to dir.
func Init(dir, name, lang string) ([]string, error) {
	if !validLang(lang) {
		return nil, fmt.Errorf("unknown language %q: want one of %s", lang, strings.Join(Langs(), ", "))
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = filepath.Base(abs)
	}
	if err := checkName(name, lang); err != nil {
		return nil, err
	}
	files, err := projectFiles(name, lang)
	if err != nil {
		return nil, err
	}
	var exist []string
	for _, f := range files {
		if _, err := os.Lstat(filepath.Join(abs, f.path)); err == nil {
			exist = append(exist, f.path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if len(exist) > 0 {
		return nil, fmt.Errorf("%s already has %s: not overwriting (choose an empty or new directory)", abs, strings.Join(exist, ", "))
	}
	var wrote []string
	for _, f := range files {
		if err := writeNew(filepath.Join(abs, f.path), f.body); err != nil {
			return wrote, err
		}
		wrote = append(wrote, f.path)
	}
	return wrote, nil
}

// UpdateSDK replaces the project's SDK copy and project.json with this
// weir's, leaving the project's own files alone.
func (p Project) UpdateSDK() error {
	if err := os.RemoveAll(filepath.Join(p.Dir, ".weir", "sdk")); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(p.Dir, metaFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	files, err := sdkFiles(p.Name, p.Lang)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := writeNew(filepath.Join(p.Dir, f.path), f.body); err != nil {
			return err
		}
	}
	return nil
}

type file struct {
	path string // slash-separated, relative to the project
	body string
}

// projectFiles is everything Init writes for lang.
func projectFiles(name, lang string) ([]file, error) {
	files, err := sdkFiles(name, lang)
	if err != nil {
		return nil, err
	}
	tmpl, err := copyTree("template/"+lang, "", nil)
	if err != nil {
		return nil, err
	}
	files = append(files, tmpl...)
	files = append(files, file{"README.md", readme(name, lang)}, file{".gitignore", "/*.wasm\n/.weir/build/\nnode_modules/\n"})
	switch lang {
	case Go:
		files = append(files, file{"go.mod", goMod(name)})
	case TS:
		pkg, lock, err := packageFiles(name)
		if err != nil {
			return nil, err
		}
		files = append(files, file{"package.json", pkg}, file{"package-lock.json", lock})
	}
	return files, nil
}

// sdkFiles is .weir/: project.json and the SDK copy for lang.
func sdkFiles(name, lang string) ([]file, error) {
	m, err := json.MarshalIndent(meta{Lang: lang, Name: name, ABIVersion: sdkABI(lang)}, "", "  ")
	if err != nil {
		return nil, err
	}
	files := []file{{metaFile, string(m) + "\n"}}
	var src []file
	switch lang {
	case Go:
		src, err = copyTree(".", ".weir/sdk/go", func(p string) bool {
			return p == "go.mod" || strings.HasPrefix(p, "abi/") || strings.HasPrefix(p, "transform/")
		})
	default:
		src, err = copyTree(lang, ".weir/sdk/"+lang, nil)
	}
	return append(files, src...), err
}

// copyTree returns the embedded files under from, placed under to, that
// keep accepts (by their path relative to the embedded root).
func copyTree(from, to string, keep func(string) bool) ([]file, error) {
	var out []file
	err := fs.WalkDir(sdk.Files(), from, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (keep != nil && !keep(p)) {
			return err
		}
		b, err := fs.ReadFile(sdk.Files(), p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, from), "/")
		if from == "." {
			rel = p
		}
		out = append(out, file{path.Join(to, rel), string(b)})
		return nil
	})
	return out, err
}

func goMod(name string) string {
	return "module " + name + `

go 1.24

require ` + SDKModule + ` v0.0.0

// The SDK comes from the copy that weir transform init laid out in
// .weir/sdk/go (weir transform init --update-sdk refreshes it).
replace ` + SDKModule + ` => ./.weir/sdk/go
`
}

// packageFiles returns the project's package.json and package-lock.json:
// the SDK's, renamed, with the same pinned assemblyscript.
func packageFiles(name string) (pkg, lock string, err error) {
	var p, l map[string]any
	for _, x := range []struct {
		file string
		into *map[string]any
	}{{"ts/package.json", &p}, {"ts/package-lock.json", &l}} {
		b, err := fs.ReadFile(sdk.Files(), x.file)
		if err != nil {
			return "", "", err
		}
		if err := json.Unmarshal(b, x.into); err != nil {
			return "", "", fmt.Errorf("%s: %w", x.file, err)
		}
	}
	pj := map[string]any{"name": name, "version": "0.1.0", "private": true, "devDependencies": p["devDependencies"]}
	l["name"], l["version"] = name, "0.1.0"
	if pkgs, ok := l["packages"].(map[string]any); ok {
		pkgs[""] = map[string]any{"name": name, "version": "0.1.0", "devDependencies": p["devDependencies"]}
	}
	pb, err := json.MarshalIndent(pj, "", "  ")
	if err != nil {
		return "", "", err
	}
	lb, err := json.MarshalIndent(l, "", "  ")
	return string(pb) + "\n", string(lb) + "\n", err
}

// checkName accepts a Go module path (go) or a crate/package name.
func checkName(n, lang string) error {
	bad := func(why string) error {
		return fmt.Errorf("name %q: %s (set --name, e.g. --name upper)", n, why)
	}
	if n == "" {
		return bad("empty")
	}
	for _, elem := range strings.Split(n, "/") {
		if lang != Go && elem != n {
			return bad("no slashes outside Go")
		}
		if elem == "" || elem == "." || elem == ".." || strings.HasPrefix(elem, "-") || strings.HasPrefix(elem, ".") {
			return bad("bad path element " + strconv.Quote(elem))
		}
		for _, r := range elem {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~", r)) {
				return bad(fmt.Sprintf("character %q not allowed", r))
			}
		}
	}
	return nil
}

func writeNew(p, body string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
