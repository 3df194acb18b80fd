// Package asm will hold the kernels: generated .s files and their Go stubs,
// a pure-Go fallback for every kernel (used under the purego build tag and
// on other architectures), and CPU-feature dispatch. Kernels know shapes
// only as generated constants; this package never imports resnet.
package asm
