//go:build !amd64 || purego

package asm

var available = []Tier{Purego}

func specialised(Tier) []ConvKernel { return nil }
