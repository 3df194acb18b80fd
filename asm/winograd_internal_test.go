package asm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/resnetgen/resnetgen/shape"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWinogradWalksPanelsInMemoryOrder: on a layer computed in one chunk
// (its U streams from memory), every worker's share of the output blocks
// reads its panels of U one after the other in memory, whatever the number
// of workers, so the GEMM kernels' prefetch of the next panel in memory
// asks for the panel the worker reads next (a worker with blocks 4–7 of 8
// used to jump a plane ahead after block 7). A layer of several chunks
// keeps the plane-major order, and PackWeights puts every (plane, block)
// panel where panelAt says, checked against the GEMM's own packing. A
// panel split into input channel blocks (ICBlock) holds them one after the
// other, in the order product reads them.
func TestWinogradWalksPanelsInMemoryOrder(t *testing.T) {
	for _, c := range []struct {
		name       string
		s          shape.Conv
		m, chunk   int
		icb        int
		blockMajor bool
	}{
		{"7×7×512 F(2,3), one chunk", shape.Conv{K: 3, Stride: 1, Pad: 1, InC: 512, OutC: 512, InH: 7, InW: 7, OutH: 7, OutW: 7}, 2, 16, 0, true},
		{"7×7×512 F(2,3), one chunk, 128 channels a call", shape.Conv{K: 3, Stride: 1, Pad: 1, InC: 512, OutC: 512, InH: 7, InW: 7, OutH: 7, OutW: 7}, 2, 16, 128, true},
		{"14×14×64 F(2,3), one chunk", shape.Conv{K: 3, Stride: 1, Pad: 1, InC: 64, OutC: 64, InH: 14, InW: 14, OutH: 14, OutW: 14}, 2, 49, 0, true},
		{"56×56×64 F(4,3), 8 chunks", shape.Conv{K: 3, Stride: 1, Pad: 1, InC: 64, OutC: 64, InH: 56, InW: 56, OutH: 56, OutW: 56}, 4, 25, 0, false},
		{"56×56×64 F(4,3), 8 chunks, 32 channels a call", shape.Conv{K: 3, Stride: 1, Pad: 1, InC: 64, OutC: 64, InH: 56, InW: 56, OutH: 56, OutW: 56}, 4, 25, 32, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := &WinogradKernel{Shape: c.s, M: c.m, Chunk: c.chunk, ICBlock: c.icb}
			var err error
			k.GEMMShape = gemmShape(c.s, k.icb(), c.chunk)
			k.gemm, err = PortableConv(k.GEMMShape)
			require.NoError(t, err)
			k.gemm.V = c.s.OutC / k.gemm.Lanes / 4 // four blocks (the portable kernel has one)
			require.Equal(t, c.blockMajor, k.blockMajor())
			nj := c.s.InC / k.icb()
			slice := k.icb() * k.BlockC() // one input channel block of a panel
			panel := nj * slice
			nb := c.s.OutC / k.BlockC()
			require.Equal(t, 4, nb)
			for parts := 1; parts <= nb; parts++ {
				for part := range parts {
					b0, b1 := part*nb/parts, (part+1)*nb/parts
					var offs []int
					k.panels(b0, b1, func(xi, b int) {
						for j := range nj { // as product reads them
							offs = append(offs, k.panelAt(xi, b, j))
						}
					})
					require.Len(t, offs, (b1-b0)*k.planes()*nj)
					for i := 1; i < len(offs); i++ {
						step := slice // the next slice in memory
						if !c.blockMajor && (i%((b1-b0)*nj) == 0) {
							step = slice + panel*(nb-(b1-b0)) // past the other workers' blocks of the plane
						}
						assert.Equal(t, step, offs[i]-offs[i-1], "%d parts, part %d, slice %d", parts, part, i)
					}
				}
			}
			// PackWeights: each (plane, block) panel at panelAt, as the
			// GEMM packs plane xi's matrix (weights numbered so that no
			// two panels hold the same values).
			oihw := make([]float32, c.s.OutC*c.s.InC*9)
			for i := range oihw {
				oihw[i] = float32(i%977) + 1
			}
			packed, err := k.PackWeights(oihw)
			require.NoError(t, err)
			seen := map[int]bool{}
			for xi := range k.planes() {
				for b := range nb {
					for j := range nj {
						off := k.panelAt(xi, b, j)
						require.False(t, seen[off])
						seen[off] = true
					}
				}
			}
			require.Len(t, seen, k.planes()*nb*nj)
			// Plane 5's panels, block by block, from a plane-major packing
			// of the same weights: k2 is the same kernel in several chunks.
			k2 := *k
			k2.Chunk = 1
			require.False(t, k2.blockMajor())
			plain, err := k2.PackWeights(oihw)
			require.NoError(t, err)
			for b := range nb {
				assert.Equal(t, plain[k2.panelAt(5, b, 0):][:panel], packed[k.panelAt(5, b, 0):][:panel], "plane 5, block %d", b)
			}
			// Input channel block j of a panel is the GEMM's packing of
			// the plane's channels [j·icb, (j+1)·icb): U_ξ[o][i] for
			// plane 5 computed from the weights directly.
			g, a := winoG[k.M], k.alpha()
			u := func(o, i int) float32 {
				w := oihw[(o*c.s.InC+i)*9:][:9]
				x, y := 5/a, 5%a
				v := 0.0
				for r := range 3 {
					for cc := range 3 {
						v += g[x][r] * float64(w[r*3+cc]) * g[y][cc]
					}
				}
				return float32(v)
			}
			bc := k.BlockC()
			for _, b := range []int{0, nb - 1} {
				for _, j := range []int{0, nj - 1} {
					sl := packed[k.panelAt(5, b, j):][:slice]
					for _, i := range []int{0, k.icb() - 1} {
						for _, o := range []int{0, bc - 1} {
							want := float64(u(b*bc+o, j*k.icb()+i))
							assert.InDelta(t, want, float64(sl[i*bc+o]), 1e-5*max(1, math.Abs(want)), "block %d, channel block %d, in %d, out %d", b, j, i, o)
						}
					}
				}
			}
		})
	}
}

// TestFitScratchServesEveryLayer: one scratch fitted to several Winograd
// layers (a network's, per worker) holds the largest of each part, worked
// out by hand: 56×56×64 F(4,3) in chunks of 25 tiles needs 36 planes of
// 25·64 floats (100 lines, padded to 101: planeStride) of V and of M;
// 7×7×512 F(2,3) in one chunk of 16 tiles 16 planes of 16·512 (512 lines,
// padded to 513), and for a batch of 3 (a one-chunk layer holds every
// image's planes) three times that; the chunked layer ignores the batch.
// Fitting a smaller layer afterwards keeps the room and the memory.
func TestFitScratchServesEveryLayer(t *testing.T) {
	sq := func(c, hw int) shape.Conv {
		return shape.Conv{K: 3, Stride: 1, Pad: 1, InC: c, OutC: c, InH: hw, InW: hw, OutH: hw, OutW: hw}
	}
	big := &WinogradKernel{Shape: sq(64, 56), M: 4, Chunk: 25}
	deep := &WinogradKernel{Shape: sq(512, 7), M: 2, Chunk: 16}
	sc := big.NewScratch(3)
	assert.Len(t, sc.v, 36*(25*64+16))
	assert.Len(t, sc.m, 36*(25*64+16))
	deep.FitScratch(sc, 3)
	assert.Len(t, sc.v, 3*16*(16*512+16))
	assert.Len(t, sc.m, 3*16*(16*512+16))
	assert.Len(t, sc.edgeIn, 16*512, "a 4×4 input tile of 512 channels")
	assert.Len(t, sc.edgeOut, 2*2*512)
	assert.Len(t, sc.zero, 512)
	assert.Len(t, sc.tmp, 36*16, "F(4,3)'s 36 intermediate vectors")
	v := sc.v
	big.FitScratch(sc, 3)
	assert.Len(t, sc.v, 3*16*(16*512+16), "fitting a smaller layer keeps the room")
	assert.Same(t, &v[0], &sc.v[0], "and the same memory")
}

// TestPlanesFallInDistinctL1Sets: the transforms touch one value of each of
// a tile's α² planes in turn, so the planes must not all map to one set of
// the L1 (64 sets of 64-byte lines on Zen 4, Zen 5 and Sapphire Rapids).
// Without the padding 7×7×512 by F(2,3) (planes 32 KiB apart), 14×14×256 by
// F(4,3) in chunks of 16 (16 KiB) and the CIFAR nets' 32×32×16 by F(4,3)
// (2 KiB) put 16, 36 and 18 planes in one or two sets.
func TestPlanesFallInDistinctL1Sets(t *testing.T) {
	for _, c := range []struct {
		m, chunk, inC, outC int
	}{
		{2, 16, 512, 512}, // ResNet-18…152's 7×7×512
		{2, 49, 256, 256}, // 14×14×256
		{4, 16, 256, 256}, // 14×14×256 by F(4,3)
		{4, 25, 64, 64},   // 56×56×64
		{4, 32, 16, 16},   // CIFAR 32×32×16
		{4, 4, 64, 64},    // CIFAR 8×8×64
		{2, 3, 8, 24},     // planes of 24 and 72 floats: not whole lines, left as they are
	} {
		k := &WinogradKernel{M: c.m, Chunk: c.chunk}
		for _, ch := range []int{c.inC, c.outC} {
			stride := k.planeStride(ch)
			require.GreaterOrEqual(t, stride, c.chunk*ch)
			require.LessOrEqual(t, stride, c.chunk*ch+16, "at most one line more")
			if c.chunk*ch%16 != 0 {
				assert.Equal(t, c.chunk*ch, stride, "F(%d,3), %d tiles of %d channels", c.m, c.chunk, ch)
				continue
			}
			sets := map[int]bool{}
			for xi := range k.planes() {
				sets[xi*stride*4/64%64] = true
			}
			assert.Len(t, sets, k.planes(), "F(%d,3), %d tiles of %d channels: planes %d floats apart", c.m, c.chunk, ch, stride)
		}
	}
}

// TestValidateWantsOneRowGEMMTiles: product calls a GEMM's micro-kernels
// for one tile row, so a table whose GEMM kernel has taller tiles is
// refused when the kernel set is built, not run wrong.
func TestValidateWantsOneRowGEMMTiles(t *testing.T) {
	s := shape.Conv{K: 3, Stride: 1, Pad: 1, InC: 64, OutC: 64, InH: 8, InW: 8, OutH: 8, OutW: 8}
	k := &WinogradKernel{Name: "w", Shape: s, M: 4, Chunk: 4,
		In: func(*float32, uintptr, uintptr, *float32, uintptr, uintptr, *float32) {},
		Out: func(*float32, uintptr, *float32, *float32, *float32, uintptr, uintptr, uintptr, uintptr, uintptr, *float32) {
		}}
	k.GEMMShape = gemmShape(s, 64, 4)
	var err error
	k.gemm, err = PortableConv(k.GEMMShape)
	require.NoError(t, err)
	require.NoError(t, k.validate())
	k.gemm.TH = 2
	require.ErrorContains(t, k.validate(), "one row high")
}

// TestWinogradMLeavesTheTableAlone: a generated package's kernel table is
// one variable that every Model of the package reads, New after New and
// concurrently, so looking a Winograd kernel up must not write into it
// (it stored the resolved GEMM in the table's entry: two New calls at once
// raced, which `go test -race` reports here).
func TestWinogradMLeavesTheTableAlone(t *testing.T) {
	if !Has(Best()) || Best() == Purego {
		t.Skip("the portable tier has no Winograd kernels") // CI requires a SIMD tier on amd64 and arm64
	}
	s := shape.Conv{K: 3, Stride: 1, Pad: 1, InC: 64, OutC: 64, InH: 8, InW: 8, OutH: 8, OutW: 8}
	noop := func(in, w, bias, res, out *float32, inRow, outRow, resRow, flags, n uintptr) {}
	g := gemmShape(s, 64, 4)
	ks := &KernelSet{
		Conv: []ConvKernel{{Name: "gemm", Tier: Best(), Shape: g, TH: 1, TW: 4, V: 1, Lanes: 16, Main: noop}},
		Winograd: []WinogradKernel{{Name: "w", Tier: Best(), Shape: s, M: 4, Chunk: 4, GEMMShape: g,
			In: func(*float32, uintptr, uintptr, *float32, uintptr, uintptr, *float32) {},
			Out: func(*float32, uintptr, *float32, *float32, *float32, uintptr, uintptr, uintptr, uintptr, uintptr, *float32) {
			}}},
	}
	var wg sync.WaitGroup
	got := make([]*WinogradKernel, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := ks.WinogradM(s, Best(), 4)
			assert.NoError(t, err)
			got[i] = k
		}()
	}
	wg.Wait()
	assert.Nil(t, ks.Winograd[0].gemm, "the table's entry was written")
	for _, k := range got {
		require.NotNil(t, k)
		assert.NotSame(t, &ks.Winograd[0], k)
		assert.Equal(t, "gemm", k.gemm.Name)
	}
}

// packWeightsPlanes is PackWeights as it was written first: every plane
// U_ξ computed whole, then packed by the GEMM kernel's PackWeights slice by
// slice. The test holds the direct version to it bit for bit.
func packWeightsPlanes(k *WinogradKernel, oihw []float32) ([]float32, error) {
	g, a := winoG[k.M], k.alpha()
	s := k.Shape
	if len(oihw) != s.OutC*s.InC*9 {
		return nil, fmt.Errorf("%s: %d weights, want %d×%d×3×3", k.Name, len(oihw), s.OutC, s.InC)
	}
	planes := make([][]float32, k.planes())
	for xi := range planes {
		planes[xi] = make([]float32, s.OutC*s.InC)
	}
	for o := 0; o < s.OutC; o++ {
		for i := 0; i < s.InC; i++ {
			w := oihw[(o*s.InC+i)*9:][:9]
			var gw [6][3]float64 // G·w
			for x := 0; x < a; x++ {
				for c := 0; c < 3; c++ {
					for r := 0; r < 3; r++ {
						gw[x][c] += g[x][r] * float64(w[r*3+c])
					}
				}
			}
			for x := 0; x < a; x++ {
				for y := 0; y < a; y++ {
					u := 0.0
					for c := 0; c < 3; c++ {
						u += gw[x][c] * g[y][c]
					}
					planes[x*a+y][o*s.InC+i] = float32(u)
				}
			}
		}
	}
	packed := make([]float32, k.planes()*s.OutC*s.InC)
	icb := k.icb()
	panel := icb * k.BlockC()
	slice := make([]float32, s.OutC*icb) // one plane's input channels [j·icb, (j+1)·icb)
	for xi, p := range planes {
		for j := range s.InC / icb {
			for o := range s.OutC {
				copy(slice[o*icb:][:icb], p[o*s.InC+j*icb:][:icb])
			}
			q, err := k.gemm.PackWeights(slice)
			if err != nil {
				return nil, err
			}
			for b := range s.OutC / k.BlockC() {
				copy(packed[k.panelAt(xi, b, j):][:panel], q[b*panel:][:panel])
			}
		}
	}
	return packed, nil
}

// TestPackWeightsWritesWhatTheGEMMReads: PackWeights, which writes each
// U_ξ[o][i] straight where the product reads it, equals the plane-by-plane
// packing through the GEMM kernel's own PackWeights bit for bit, for
// block-major (one chunk) and plane-major U, with and without input
// channel blocks.
func TestPackWeightsWritesWhatTheGEMMReads(t *testing.T) {
	for _, c := range []struct {
		s             shape.Conv
		m, chunk, icb int
	}{
		{shape.Conv{K: 3, Stride: 1, Pad: 1, InC: 64, OutC: 64, InH: 8, InW: 8, OutH: 8, OutW: 8}, 4, 4, 0},
		{shape.Conv{K: 3, Stride: 1, Pad: 1, InC: 64, OutC: 128, InH: 16, InW: 16, OutH: 16, OutW: 16}, 4, 8, 32},
		{shape.Conv{K: 3, Stride: 1, Pad: 1, InC: 256, OutC: 64, InH: 7, InW: 7, OutH: 7, OutW: 7}, 2, 16, 128},
	} {
		k := &WinogradKernel{Name: "w", Shape: c.s, M: c.m, Chunk: c.chunk, ICBlock: c.icb}
		th, tw := k.Tiles()
		k.GEMMShape = gemmShape(c.s, k.icb(), c.chunk)
		if r := th * tw % c.chunk; r > 0 {
			k.TailShape = gemmShape(c.s, k.icb(), r)
		}
		var err error
		k.gemm, err = PortableConv(k.GEMMShape)
		require.NoError(t, err)
		k.gemm.V, k.gemm.Lanes = 2, 16
		rng := rand.New(rand.NewPCG(1, 2))
		w := make([]float32, c.s.OutC*c.s.InC*9)
		for i := range w {
			w[i] = float32(rng.NormFloat64())
		}
		got, err := k.PackWeights(w)
		require.NoError(t, err)
		want, err := packWeightsPlanes(k, w)
		require.NoError(t, err)
		require.Equal(t, want, got, "%+v", c)
	}
}
