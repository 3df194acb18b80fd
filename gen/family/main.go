// Command family writes this repository's generated/ packages: one package
// per network of the family, each written by gen.Generate exactly as
// resnetgen writes a user's (the equivalent command is quoted in each
// package's documentation), and generated/all, which lists them by
// architecture name. generated/generate.go runs it through go generate.
package main

import (
	"flag"
	"log"
	"os"
	"path/filepath"
	"sync"

	"github.com/resnetgen/resnetgen/gen"
	"github.com/resnetgen/resnetgen/gen/graph"
	"github.com/resnetgen/resnetgen/gen/kernels"
	"github.com/resnetgen/resnetgen/resnet"
)

const module = "github.com/resnetgen/resnetgen"

// packages maps each directory under generated/ to its architecture, and
// names the package whose kernels are, one by one, this one's (the same
// shapes, or a subset of them: a deeper network of a family repeats its
// blocks' shapes, a plain network lacks the projection shortcuts). Only
// that package's TestKernels runs them, and its TestForward every tier;
// the others prove their kernels the same (enginetest.SharedKernels: they
// fail once the generator makes them differ) and run their best tier.
// Each group's smallest network is the one tested in full.
//
// int8 says which carry int8 kernels besides the float32 ones: the CIFAR
// nets, ResNet-18 and ResNet-50 (each adds its int8 kernels' assembly,
// ~0.5–1 MB of source and a few seconds of generation; the others would
// cost the same and share ResNet-18's or ResNet-50's shapes).
var packages = []struct {
	dir, arch, kernelsOf string
	int8                 bool
}{
	{"resnet18", "resnet18", "", true},
	{"resnet34", "resnet34", "resnet18", false},
	{"resnet50", "resnet50", "", true},
	{"resnet101", "resnet101", "resnet50", false},
	{"resnet152", "resnet152", "resnet50", false},
	{"resnet50v1", "resnet50v1", "", false},
	{"resnet101v1", "resnet101v1", "resnet50v1", false},
	{"resnet152v1", "resnet152v1", "resnet50v1", false},
	{"plain18", "plain18", "resnet18", false},
	{"plain34", "plain34", "resnet18", false},
	{"cifar/resnet20", "cifar-resnet20", "", true},
	{"cifar/resnet32", "cifar-resnet32", "cifar/resnet20", true},
	{"cifar/resnet44", "cifar-resnet44", "cifar/resnet20", true},
	{"cifar/resnet56", "cifar-resnet56", "cifar/resnet20", true},
	{"cifar/resnet110", "cifar-resnet110", "cifar/resnet20", true},
}

func main() {
	dir := flag.String("dir", ".", "the generated/ directory")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("gen/family: ")
	var wg sync.WaitGroup
	errs := make([]error, len(packages))
	sem := make(chan struct{}, 4)
	for i, p := range packages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out := filepath.Join(*dir, p.dir)
			kernelsOf := ""
			if p.kernelsOf != "" {
				rel, err := filepath.Rel(p.dir, p.kernelsOf)
				if err != nil {
					errs[i] = err
					return
				}
				kernelsOf = filepath.ToSlash(rel)
			}
			cmd := "resnetgen -arch " + p.arch + " -o " + p.dir
			if p.int8 {
				cmd = "resnetgen -arch " + p.arch + " -precision int8 -o " + p.dir
			}
			res, err := gen.Generate(gen.Options{Arch: p.arch, Dir: out, Int8: p.int8, Command: cmd, KernelsOf: kernelsOf})
			if err != nil {
				errs[i] = err
				return
			}
			log.Printf("%s: %s, %d layers, %d kernels' shapes, %d files, %.1f MB", p.dir, p.arch, len(res.Net.Layers), res.Shapes, len(res.Files), float64(res.Bytes)/1e6)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			log.Fatalf("%s: %v", packages[i].dir, err)
		}
	}
	var entries []graph.Entry
	for _, p := range packages {
		entries = append(entries, graph.Entry{Path: module + "/generated/" + p.dir, Arch: p.arch})
	}
	src, err := graph.Registry(module+"/generated/all", entries)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(*dir, "all"), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*dir, "all", "all.go"), src, 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*dir, "..", "docs", "neon.md"), neonDoc(), 0o644); err != nil {
		log.Fatal(err)
	}
}

// neonDoc is docs/neon.md: the NEON plan of the family's shapes and what
// the cost rule models for it on Neoverse N1 and V1 (kernels.NEONDoc).
func neonDoc() []byte {
	var nets []*resnet.Network
	for _, p := range packages {
		nets = append(nets, resnet.MustBuild(p.arch))
	}
	return kernels.NEONDoc(nets...)
}
