package enginetest

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// SharedKernels checks that every kernel of the generated package in
// directory dir is, one by one, a kernel of the package in directory of:
// the same assembly (comments and blank lines aside) under the same
// symbol, the same Go declaration, and the same entry in the kernel table,
// in files of the same names (kernels_*.s, kernels_*.go). Then of's
// TestKernels, which runs every kernel of its table on every tier, runs
// dir's too. It returns how many kernels (assembly functions) dir has, and
// an error listing the differences.
func SharedKernels(dir, of string) (int, error) {
	names, err := filepath.Glob(filepath.Join(dir, "kernels_*"))
	if err != nil {
		return 0, err
	}
	if len(names) == 0 {
		return 0, fmt.Errorf("%s has no generated kernel files (kernels_*)", dir)
	}
	kernels := 0
	var diffs []string
	for _, name := range names {
		base := filepath.Base(name)
		var parse func([]byte) (map[string]string, error)
		switch {
		case strings.HasSuffix(base, ".s"):
			parse = asmFunctions
		case strings.HasSuffix(base, ".go"):
			parse = goDeclarations
		default:
			continue
		}
		mine, err := readParsed(name, parse)
		if err != nil {
			return 0, err
		}
		theirs, err := readParsed(filepath.Join(of, base), parse)
		if err != nil {
			return 0, err
		}
		if strings.HasSuffix(base, ".s") {
			kernels += len(mine)
		}
		keys := make([]string, 0, len(mine))
		for k := range mine {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t, ok := theirs[k]
			switch {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("%s: %s is not in %s", base, k, of))
			case t != mine[k]:
				diffs = append(diffs, fmt.Sprintf("%s: %s differs from %s's:\n%s", base, k, of, firstDifference(mine[k], t)))
			}
		}
	}
	if len(diffs) > 0 {
		const most = 10
		if len(diffs) > most {
			diffs = append(diffs[:most], fmt.Sprintf("… and %d more", len(diffs)-most))
		}
		return kernels, fmt.Errorf("the kernels of %s are not all %s's:\n%s", dir, of, strings.Join(diffs, "\n"))
	}
	return kernels, nil
}

func readParsed(path string, parse func([]byte) (map[string]string, error)) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return m, nil
}

// asmFunctions returns the body of every TEXT symbol in Go assembly
// source, without comments and blank lines; what stands before the first
// TEXT (the build constraint, #include) under "".
func asmFunctions(src []byte) (map[string]string, error) {
	out := map[string]string{}
	name := ""
	var body strings.Builder
	flush := func() error {
		if _, dup := out[name]; dup {
			return fmt.Errorf("TEXT %s twice", name)
		}
		out[name] = body.String()
		body.Reset()
		return nil
	}
	for _, line := range strings.Split(string(src), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "//") {
			continue
		}
		if rest, ok := strings.CutPrefix(trimmed, "TEXT "); ok {
			if err := flush(); err != nil {
				return nil, err
			}
			name, _, _ = strings.Cut(rest, "(")
		}
		body.WriteString(trimmed)
		body.WriteByte('\n')
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// goDeclarations returns a generated kernel file's declarations, printed
// without comments: each function (the assembly's Go signature) by its
// name, and each element of a kernel table (a composite literal of
// KernelSet) by the table's field and the element's Name.
func goDeclarations(src []byte) (map[string]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	print := func(n ast.Node) string {
		var b bytes.Buffer
		printer.Fprint(&b, fset, n)
		return b.String()
	}
	add := func(key, val string) error {
		if _, dup := out[key]; dup {
			return fmt.Errorf("%s twice", key)
		}
		out[key] = val
		return nil
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if err := add("func "+d.Name.Name, print(d.Type)); err != nil {
				return nil, err
			}
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				vs, ok := spec.(*ast.ValueSpec)
				if !ok {
					continue // imports
				}
				for i, v := range vs.Values {
					table, ok := v.(*ast.CompositeLit)
					if !ok {
						return nil, fmt.Errorf("var %s is not a kernel table", vs.Names[i].Name)
					}
					// As the empty table below: a package without int8
					// kernels (var kernels asm.KernelSet) shares the
					// portable build's table of one with them (Int8: true).
					if err := add("var "+vs.Names[i].Name, print(table.Type)); err != nil {
						return nil, err
					}
					for _, field := range table.Elts {
						kv, ok := field.(*ast.KeyValueExpr)
						if !ok {
							return nil, fmt.Errorf("var %s: %s is not a field of a kernel table", vs.Names[i].Name, print(field))
						}
						list, ok := kv.Value.(*ast.CompositeLit)
						if !ok { // a flag of the table (Int8: true)
							if err := add(print(kv.Key), print(kv.Value)); err != nil {
								return nil, err
							}
							continue
						}
						for _, e := range list.Elts {
							if err := add(print(kv.Key)+" "+elementName(e, print), print(e)); err != nil {
								return nil, err
							}
						}
					}
				}
				if len(vs.Values) == 0 { // var kernels asm.KernelSet: the empty table
					for _, n := range vs.Names {
						if err := add("var "+n.Name, print(vs.Type)); err != nil {
							return nil, err
						}
					}
				}
			}
		}
	}
	return out, nil
}

// elementName is a kernel table element's Name field, or its whole text.
func elementName(e ast.Expr, print func(ast.Node) string) string {
	if c, ok := e.(*ast.CompositeLit); ok {
		for _, f := range c.Elts {
			if kv, ok := f.(*ast.KeyValueExpr); ok && print(kv.Key) == "Name" {
				return print(kv.Value)
			}
		}
	}
	return print(e)
}

// firstDifference shows the first line where a and b differ.
func firstDifference(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("  line %d: %q, theirs %q", i+1, x, y)
		}
	}
	return "  (the same lines)"
}
