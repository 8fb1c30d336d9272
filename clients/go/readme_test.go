package satchel_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fence is one fenced code block of a Markdown file.
type fence struct {
	lang string
	text string
}

// readFences returns README.md's fenced blocks, in order.
func readFences(t *testing.T) []fence {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var fences []fence
	var cur *fence
	for _, line := range strings.SplitAfter(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &fence{lang: strings.TrimPrefix(trimmed, "```")}
		case cur != nil && trimmed == "```":
			fences = append(fences, *cur)
			cur = nil
		case cur != nil:
			cur.text += line
		}
	}
	if cur != nil {
		t.Fatalf("README.md: a %s block is not closed", cur.lang)
	}
	return fences
}

// goEnv is the environment of the go commands the README's steps run: the
// module cache as the first module proxy, the usual one after it, no
// workspace, -mod=mod.
func goEnv(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	cache := strings.TrimSpace(string(out))
	// What the cache lacks (modules only dependencies' tests import, which
	// `go mod tidy` still asks for) comes from the module proxy test.sh
	// downloaded from.
	proxy, err := exec.Command("go", "env", "GOPROXY").Output()
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOFLAGS=") && !strings.HasPrefix(kv, "GOPROXY=") && !strings.HasPrefix(kv, "GOWORK=") {
			env = append(env, kv)
		}
	}
	return append(env, "GOFLAGS=-mod=mod", "GOPROXY=file://"+filepath.ToSlash(filepath.Join(cache, "cache", "download"))+","+strings.TrimSpace(string(proxy)),
		"GOSUMDB=off", "GOWORK=off", "GOTOOLCHAIN=local")
}

func runIn(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q in %s: %v\nstdout:\n%s\nstderr:\n%s", name, args, dir, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// readmeProgram is one of README.md's Go blocks and the text block after
// it: what the program prints.
type readmeProgram struct{ source, output string }

// readmeParts returns README.md's install steps (its one sh block) and its
// Go programs, each of which must be a whole main package.
func readmeParts(t *testing.T) (string, []readmeProgram) {
	t.Helper()
	fences := readFences(t)
	var install string
	var programs []readmeProgram
	for i, f := range fences {
		switch f.lang {
		case "sh":
			if install != "" {
				t.Fatal("README.md has more than one sh block; which are the install steps?")
			}
			install = f.text
		case "go":
			if !strings.HasPrefix(f.text, "package main\n") {
				t.Fatalf("README.md's Go block %d is not a whole program (package main):\n%s", len(programs)+1, f.text)
			}
			p := readmeProgram{source: f.text}
			if i+1 < len(fences) && fences[i+1].lang == "text" {
				p.output = fences[i+1].text
			}
			programs = append(programs, p)
		}
	}
	if install == "" || len(programs) == 0 {
		t.Fatalf("README.md: install steps %q, %d Go programs", install, len(programs))
	}
	return install, programs
}

// The README as a new user follows it: its install steps (the sh block) in
// a fresh module, with its Go blocks (each a whole main.go) written where
// the steps say; the require must then be in go.mod. The programs are
// built and run in order against the test daemon ($SATCHEL_ADDR) and
// registry (for localhost:5000), each printing exactly the text block after
// it.
func TestReadmeInstallStepsAndProgramsWork(t *testing.T) {
	install, programs := readmeParts(t)
	checkout, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	mod := t.TempDir()
	env := goEnv(t)
	runIn(t, mod, env, "go", "mod", "init", "example.com/readme")
	wrote := false
	// The README's registry, with a repository prefix of this test's own.
	reg := registry + "/readme"
	for _, step := range strings.Split(strings.ReplaceAll(install, "\\\n", " "), "\n") {
		step = strings.TrimSpace(step)
		switch {
		case step == "":
		case strings.HasPrefix(step, "#"):
			// "write code that imports ...": the README's programs.
			for i, p := range programs {
				dir := filepath.Join(mod, fmt.Sprintf("example%d", i+1))
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				src := strings.ReplaceAll(p.source, "localhost:5000", reg)
				if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			wrote = true
		default:
			runIn(t, mod, env, "bash", "-c", strings.ReplaceAll(step, "/path/to/satchel/clients/go", checkout))
		}
	}
	if !wrote {
		t.Fatal("the install steps never say where the code goes (a # line)")
	}
	var gomod struct{ Require []struct{ Path string } }
	if err := json.Unmarshal([]byte(runIn(t, mod, env, "go", "mod", "edit", "-json")), &gomod); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(gomod.Require, func(r struct{ Path string }) bool { return r.Path == "github.com/satchel-oci/satchel/clients/go" }) {
		t.Fatalf("after the install steps go.mod does not require the client: %+v", gomod.Require)
	}

	if unformatted := runIn(t, mod, env, "gofmt", "-l", "."); unformatted != "" {
		t.Errorf("gofmt would change README programs: %s", unformatted)
	}
	bin := filepath.Join(mod, "bin")
	runIn(t, mod, env, "go", "build", "-o", bin+string(filepath.Separator), "./...")
	work := t.TempDir()
	for _, name := range []string{"app.tar", "sbom.json", "weights.bin"} {
		if err := os.WriteFile(filepath.Join(work, name), []byte("the README's "+name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runEnv := append(os.Environ(), "SATCHEL_ADDR="+daemonAddr)
	for i, p := range programs {
		got := runIn(t, work, runEnv, filepath.Join(bin, fmt.Sprintf("example%d", i+1)))
		if got != p.output {
			t.Errorf("README program %d printed:\n%s\nthe README says:\n%s", i+1, got, p.output)
		}
	}
}
