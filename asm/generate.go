package asm

//go:generate go run ../gen/kernels -root ..
