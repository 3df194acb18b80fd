// Package asm runs kernels: the driver that calls a generated package's
// micro-kernels over tiles, bands and workers' parts (ConvKernel,
// WinogradKernel, QConvKernel for int8, the pools and the classifier), the
// kernel table a generated package hands it (KernelSet), a portable Go
// implementation of every op (what runs under the purego build tag, on
// other architectures, and for int8 on arm64), and CPU-feature dispatch
// (Tiers, Int8Tiers, Best). The .s files live in each generated package,
// written by gen/kernels from the plan of gen/plan; asm holds none. It
// never imports resnet or engine: shapes come as shape.Conv.
//
// Activations are NHWC Buffers with a zero halo; kernels read the halo as
// padding and write only the interior.
package asm
