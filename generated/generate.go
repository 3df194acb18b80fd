package generated

// One line regenerates everything generated: the kernels in asm/ and bench/
// and the networks here.
//go:generate go run ../gen -root ..
