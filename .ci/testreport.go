// Command testreport reads `go test -json` on standard input and writes
// what plain `go test` would (each package's result; a failing test's
// output), then the slowest tests and packages. CI pipes the README's test
// command through it: go run .ci/testreport.go [-top N] [-json FILE].
// It exits 1 if a test or a package failed, as go test does.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// event is one line of go test -json (cmd/test2json).
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output events
	Test       string
	Elapsed    float64
	Output     string
}

type timed struct {
	name    string
	elapsed float64
}

func main() {
	top := flag.Int("top", 15, "how many of the slowest tests and packages to list")
	keep := flag.String("json", "", "also copy the events to this file")
	flag.Parse()
	var in io.Reader = os.Stdin
	if *keep != "" {
		f, err := os.Create(*keep)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			os.Exit(2)
		}
		defer f.Close()
		in = io.TeeReader(os.Stdin, f)
	}
	output := map[string]*strings.Builder{} // package + test → its output
	var tests, packages []timed
	var skipped []string
	failed := false
	start := time.Now()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			fmt.Println(sc.Text()) // not an event: go's own message
			continue
		}
		pkg := strings.TrimPrefix(e.Package, "github.com/resnetgen/resnetgen/")
		switch {
		case e.Action == "build-output":
			fmt.Print(e.Output)
		case e.Action == "build-fail":
			failed = true
		case e.Test == "" && e.Action == "output":
			if o := e.Output; o != "PASS\n" && o != "FAIL\n" && !strings.HasPrefix(o, "=== ") && !strings.HasPrefix(o, "testing: warning: no tests to run") {
				fmt.Print(o)
			}
		case e.Test == "" && e.Action == "skip": // no test files
		case e.Test == "" && (e.Action == "pass" || e.Action == "fail"):
			packages = append(packages, timed{pkg, e.Elapsed})
			failed = failed || e.Action == "fail"
		case e.Action == "output":
			key := e.Package + " " + e.Test
			if output[key] == nil {
				output[key] = &strings.Builder{}
			}
			output[key].WriteString(e.Output)
		case e.Action == "pass" || e.Action == "fail" || e.Action == "skip":
			key := e.Package + " " + e.Test
			if e.Action == "fail" {
				fmt.Print(output[key])
				failed = true
			}
			if e.Action == "skip" {
				skipped = append(skipped, pkg+" "+e.Test)
			}
			delete(output, key)
			if !strings.Contains(e.Test, "/") {
				tests = append(tests, timed{pkg + " " + e.Test, e.Elapsed})
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	list := func(title string, ts []timed) {
		sort.Slice(ts, func(i, j int) bool { return ts[i].elapsed > ts[j].elapsed })
		fmt.Printf("%s (the machine may be shared: times are wall times):\n", title)
		for i, t := range ts {
			if i == *top {
				break
			}
			fmt.Printf("  %8.1fs  %s\n", t.elapsed, t.name)
		}
	}
	fmt.Printf("\n%d packages and %d tests in %v.\n", len(packages), len(tests), time.Since(start).Round(time.Second))
	list(fmt.Sprintf("The %d slowest tests", *top), tests)
	list(fmt.Sprintf("The %d slowest packages", *top), packages)
	if len(skipped) > 0 {
		sort.Strings(skipped)
		fmt.Printf("Skipped (%d): %s\n", len(skipped), strings.Join(skipped, ", "))
	}
	if failed {
		os.Exit(1)
	}
}
