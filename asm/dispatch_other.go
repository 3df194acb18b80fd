//go:build !amd64 || purego

package asm

var available = []Tier{Purego}

func specialised(Tier) []ConvKernel { return nil }

func maxPools(Tier) []MaxPoolKernel { return nil }
func avgPools(Tier) []AvgPoolKernel { return nil }
func fcs(Tier) []FCKernel           { return nil }
