// Package gen holds the generators that go generate runs: gen/kernels (Avo
// programs emitting the AVX-512 and AVX2 kernels into asm/ and the peak
// probe into bench/) and gen/graph (Jennifer, emitting one package per
// network into generated/). Both read the layer lists of package resnet,
// the single description of every network. An arm64 NEON emitter
// (gen/neon) is still to come.
package gen
