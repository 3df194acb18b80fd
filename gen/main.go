// Command gen is the generator that go generate runs (generated/generate.go):
// gen/kernels (Avo) writes the AVX-512 and AVX2 kernels into asm/ and the
// peak probe into bench/, then gen/graph (Jennifer) writes one package per
// network into generated/. Both read the layer lists of package resnet, the
// single description of every network; the output is deterministic.
package main

import (
	"flag"
	"log"

	"github.com/resnetgen/resnetgen/gen/graph"
	"github.com/resnetgen/resnetgen/gen/kernels"
)

func main() {
	root := flag.String("root", ".", "repository root")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("gen: ")
	kernels.Generate(*root)
	graph.Generate(*root)
}
