package asm_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/engine/enginetest"
	"github.com/resnetgen/resnetgen/resnet"
)

func TestPortablePoolsAndFCMatchReference(t *testing.T) {
	for _, hw := range [][2]int{{112, 112}, {96, 80}, {7, 5}, {1, 1}, {2, 3}} {
		mp, err := asm.PortableMaxPool(64)
		require.NoError(t, err)
		enginetest.MaxPoolKernel(t, mp, hw[0], hw[1])
		ap, err := asm.PortableAvgPool(48)
		require.NoError(t, err)
		enginetest.AvgPoolKernel(t, ap, hw[0], hw[1])
	}
	for _, io := range [][2]int{{2048, 1000}, {512, 37}, {64, 10}, {3, 1}} {
		fc, err := asm.PortableFC(io[0], io[1])
		require.NoError(t, err)
		enginetest.FCKernel(t, fc)
	}
	_, err := asm.PortableMaxPool(0)
	assert.ErrorContains(t, err, "max pool of 0 channels")
	_, err = asm.PortableFC(0, 10)
	assert.ErrorContains(t, err, "fully-connected layer 0→10")
	mp, _ := asm.PortableMaxPool(16)
	assert.ErrorContains(t, mp.Run(asm.NewBuffer(8, 8, 16, 0), asm.NewBuffer(4, 4, 16, 0)), "halo ≥ 1")
	assert.ErrorContains(t, mp.Run(asm.NewBuffer(8, 6, 16, 1), asm.NewBuffer(4, 4, 16, 0)), "want 4x3x16")
}

// The option-A shortcut equals the reference's SubsamplePad, rectangular
// maps and every split included.
func TestSubsamplePad(t *testing.T) {
	in := asm.NewBuffer(9, 6, 16, 1)
	for i := range in.Data {
		in.Data[i] = float32(i%97) - 40
	}
	for y := -1; y <= in.H; y++ { // a zero halo, as the planner keeps it
		for x := -1; x <= in.W; x++ {
			if y < 0 || x < 0 || y == in.H || x == in.W {
				clear(in.Data[in.Index(y, x, 0):][:16])
			}
		}
	}
	p := resnet.NewPlanes(resnet.Shape{C: 16, H: 9, W: 6})
	for c := 0; c < 16; c++ {
		for y := 0; y < 9; y++ {
			for x := 0; x < 6; x++ {
				p.Data[(c*9+y)*6+x] = float64(in.Data[in.Index(y, x, c)])
			}
		}
	}
	want := resnet.SubsamplePad(p, 32, 2)
	for _, parts := range []int{1, 2, 3} {
		sp := asm.SubsamplePad{In: in, Out: asm.NewBuffer(5, 3, 32, 0), Stride: 2}
		require.NoError(t, sp.Check())
		for part := 0; part < parts; part++ {
			sp.RunPart(part, parts)
		}
		for c := 0; c < 32; c++ {
			for y := 0; y < 5; y++ {
				for x := 0; x < 3; x++ {
					require.Equal(t, float32(want.At(c, y, x)), sp.Out.Data[sp.Out.Index(y, x, c)], "%d parts, %d,%d,%d", parts, c, y, x)
				}
			}
		}
	}
	bad := asm.SubsamplePad{In: in, Out: asm.NewBuffer(5, 3, 31, 0), Stride: 2}
	assert.ErrorContains(t, bad.Check(), "option-A shortcut from 9x6x16 to 5x3x31 with stride 2")
}
