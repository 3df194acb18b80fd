package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Bad -peers flags are usage errors (exit status 2) before anything runs.
func TestBenchPeersUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-peers"}, "give -precision int8"},
		{[]string{"-peers", "-precision", "fp32,int8"}, "give -precision int8"},
		{[]string{"-peers", "-precision", "int8", "-batch", "8"}, "batch 1"},
		{[]string{"-peers", "-precision", "int8", "-rounds", "-1"}, "-rounds ≥ 0"},
		{[]string{"-peers", "-precision", "int8", "-runs", "0"}, "-runs ≥ 1"},
		{[]string{"-peers", "-precision", "int8", "-arch", "resnet34"}, "resnet34 has no int8 kernels"},
		{[]string{"-peers", "-precision", "int8", "-arch", "cifar-resnet20"}, "torchvision's ImageNet networks"},
	} {
		code, _, stderr := runCmd(append([]string{"bench"}, c.args...)...)
		assert.Equal(t, 2, code, "%v", c.args)
		assert.Contains(t, stderr, c.want, "%v", c.args)
	}
}
