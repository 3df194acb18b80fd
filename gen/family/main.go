// Command family writes this repository's generated/ packages: one package
// per network of the family, each written by gen.Generate exactly as
// resnetgen writes a user's (the equivalent command is quoted in each
// package's documentation), and generated/all, which lists them by
// architecture name. generated/generate.go runs it through go generate.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
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
var packages = []struct{ dir, arch, kernelsOf string }{
	{"resnet18", "resnet18", ""},
	{"resnet34", "resnet34", "resnet18"},
	{"resnet50", "resnet50", ""},
	{"resnet101", "resnet101", "resnet50"},
	{"resnet152", "resnet152", "resnet50"},
	{"resnet50v1", "resnet50v1", ""},
	{"resnet101v1", "resnet101v1", "resnet50v1"},
	{"resnet152v1", "resnet152v1", "resnet50v1"},
	{"plain18", "plain18", "resnet18"},
	{"plain34", "plain34", "resnet18"},
	{"cifar/resnet20", "cifar-resnet20", ""},
	{"cifar/resnet32", "cifar-resnet32", "cifar/resnet20"},
	{"cifar/resnet44", "cifar-resnet44", "cifar/resnet20"},
	{"cifar/resnet56", "cifar-resnet56", "cifar/resnet20"},
	{"cifar/resnet110", "cifar-resnet110", "cifar/resnet20"},
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
			res, err := gen.Generate(gen.Options{Arch: p.arch, Dir: out, Command: "resnetgen -arch " + p.arch + " -o " + p.dir, KernelsOf: kernelsOf})
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

// neonDoc is docs/neon.md: the NEON tiling of every convolution shape of
// the family and what the cost rule models for it on Neoverse N1 and V1
// (no arm64 machine is at hand to measure).
func neonDoc() []byte {
	var nets []*resnet.Network
	for _, p := range packages {
		nets = append(nets, resnet.MustBuild(p.arch))
	}
	var b strings.Builder
	b.WriteString(`# NEON kernels: tiles and their modelled speed

Written by gen/family (go generate ./...); do not edit. No arm64 machine is reachable from the project,
so no NEON speed has been measured: the figures are the cost rule's (gen/kernels/blocking.go), for each
convolution shape of the family's packages. The kernels are tested for correctness under
qemu-aarch64 (every shape against the float64 reference; whole networks).

The inner loop loads 4 input channels of a pixel with one 128-bit load and multiplies them by element
(FMLA Vd.4S, Vn.4S, Vm.S[i]): per group of 4 channels a tile of R pixels × V vectors makes R input and
4·V weight loads for 4·R·V FMAs. The 3-channel stems load one channel at a time (into lane 0). A tile
needs R·V accumulators, R input and V weight registers of the 32.

The model: Neoverse N1 (Graviton2, Ampere Altra) has 2 FMA pipes and 2 load ports, V1 (Graviton3) 4
and 3; FMLA latency 4 on both. A tile's cost is the largest of FMAs ÷ pipes, loads ÷ ports and
latency ÷ accumulators; "N1" and "V1" are the modelled fractions of each core's FMA peak, averaged
over the layer's full and remainder tiles. V1 needs 16 independent accumulators to hide its latency,
which the 7×7 and remainder tiles do not always have.

| kernel | tile (TH×TW px × V·4 channels) | remainders (rows, cols) | channels per input load | FMAs per load | N1 | V1 |
| --- | --- | --- | --- | --- | --- | --- |
`)
	for _, m := range kernels.ModelNEON(nets...) {
		fmt.Fprintf(&b, "| %s | %d×%d × %d | %d, %d | %d | %.1f | %.2f | %.2f |\n",
			m.Name, m.TH, m.TW, m.V*4, m.RemTH, m.RemTW, m.GroupOfChannels, m.FMAsPerLoad, m.N1, m.V1)
	}
	return []byte(b.String())
}
