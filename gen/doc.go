// Package gen will hold the generator that go generate runs: gen/kernels
// (Avo programs emitting the AVX-512 and AVX2 kernels into asm/), gen/neon
// (our arm64 emitter) and gen/graph (Jennifer, emitting one Forward per
// network into generated/). All of it reads the layer lists of package
// resnet, the single description of every network.
package gen
