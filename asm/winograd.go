package asm

import (
	"fmt"

	"github.com/resnetgen/resnetgen/shape"
)

// WinogradKernel computes a 3x3 stride-1 convolution with padding 1 by
// Winograd's F(m×m, 3×3), m 4 or 2: each m×m output tile is
// A^T [U ⊙ (B^T d B)] A, with d the α×α input tile (α = m + 2) and
// U = G g G^T the transformed kernel. Per chunk of Chunk tiles, In
// transforms the input tiles into α² planes V_ξ (tiles × InC), GEMM
// computes M_ξ = V_ξ · U_ξ (tiles × OutC) as a 1x1 convolution over a
// 1×Chunk map (Tail over the last, shorter chunk), and Out transforms M
// back into output tiles, adding the bias and the residual and applying
// ReLU. F(4,3) multiplies 36/144 = 1/4 as often as the direct convolution
// with weights 4 times larger; F(2,3) 16/36 as often, with weights 16/9 as
// large.
type WinogradKernel struct {
	Name  string
	Tier  Tier
	Shape shape.Conv // K 3, stride 1, padding 1
	M     int        // output tile side: 4 for F(4×4,3×3), 2 for F(2×2,3×3)
	Chunk int        // tiles per GEMM
	// ICBlock is the input channels of one product call, a divisor of
	// InC (0: InC). A layer whose U streams from memory splits its input
	// channels so that each call's slice of a weight panel, read from
	// memory by its first tile, is re-read by the others from L1, and the
	// stream of U never pauses for long: gen/kernels.icBlock.
	ICBlock int
	// GEMMShape and TailShape are the 1x1 shapes of the products (ICBlock
	// input channels), over Chunk tiles and over the T mod Chunk tiles of
	// the last chunk (zero if none); the kernels come from the same
	// KernelSet.
	GEMMShape, TailShape shape.Conv
	In                   func(in *float32, inRow, inPix uintptr, v *float32, vPlane, nvec uintptr, tmp *float32)
	Out                  func(m *float32, mPlane uintptr, bias, res, out *float32, resRow, outRow, outPix, flags, nvec uintptr, tmp *float32)

	gemm, tail *ConvKernel
}

// winoG holds G (α×3) of F(4,3) and F(2,3): U = G g G^T (gen/kernels emits
// the transforms with B^T and A^T; the three are held together by the
// tests against the direct convolution).
var winoG = map[int][][3]float64{
	4: {
		{1.0 / 4, 0, 0},
		{-1.0 / 6, -1.0 / 6, -1.0 / 6},
		{-1.0 / 6, 1.0 / 6, -1.0 / 6},
		{1.0 / 24, 1.0 / 12, 1.0 / 6},
		{1.0 / 24, -1.0 / 12, 1.0 / 6},
		{0, 0, 1},
	},
	2: {
		{1, 0, 0},
		{0.5, 0.5, 0.5},
		{0.5, -0.5, 0.5},
		{0, 0, 1},
	},
}

// alpha is the input tile side, m + 2; planes the number of products, α².
func (k *WinogradKernel) alpha() int  { return k.M + 2 }
func (k *WinogradKernel) planes() int { return k.alpha() * k.alpha() }

// planeStride is the floats from one plane of a chunk's transformed tiles
// (V, c = InC) or products (M, c = OutC) to the next: the plane, and where
// it is an even number of 64-byte lines one line more (a plane that is not
// whole lines is left as it is). The input transform stores each
// tile's α² values one per plane and the output transform loads them so;
// planes a multiple of 4 KiB apart put all α² in one set of the L1 (64
// sets on Zen 4 and 5 and Sapphire Rapids), more lines than its 8–12 ways.
// 7×7×512 by F(2,3) had 32 KiB planes (16 tiles × 512 channels), the
// CIFAR nets' 32×32×16 by F(4,3) 2 KiB; an odd number of lines puts up to
// 64 planes in distinct sets.
func (k *WinogradKernel) planeStride(c int) int {
	n := k.Chunk * c
	if lines := n / 16; n%16 == 0 && lines%2 == 0 {
		n += 16
	}
	return n
}

// planesLen is the floats of a chunk's α² planes of c channels (planeStride
// apart): one image's V (c = InC) or M (c = OutC).
func (k *WinogradKernel) planesLen(c int) int { return k.planes() * k.planeStride(c) }

// Tiles is the number of output tiles: ⌈OutH/m⌉ · ⌈OutW/m⌉.
func (k *WinogradKernel) Tiles() (th, tw int) {
	return (k.Shape.OutH + k.M - 1) / k.M, (k.Shape.OutW + k.M - 1) / k.M
}

// Lanes is the channel vector width the transforms and the GEMM use.
func (k *WinogradKernel) Lanes() int { return k.gemm.Lanes }

// BlockC is the output channels of one GEMM block.
func (k *WinogradKernel) BlockC() int { return k.gemm.BlockC() }

func (k *WinogradKernel) validate() error {
	s := k.Shape
	th, tw := k.Tiles()
	t := th * tw
	switch {
	case winoG[k.M] == nil:
		return fmt.Errorf("%s: no Winograd F(%d,3)", k.Name, k.M)
	case s.K != 3 || s.Stride != 1 || s.Pad != 1 || !s.Valid():
		return fmt.Errorf("%s: Winograd takes 3x3 stride-1 layers with padding 1, not %+v", k.Name, s)
	case k.Chunk < 1 || k.Chunk > t:
		return fmt.Errorf("%s: chunk of %d tiles for %d tiles", k.Name, k.Chunk, t)
	case k.ICBlock < 0 || k.icb() > s.InC || s.InC%k.icb() != 0:
		return fmt.Errorf("%s: input channel blocks of %d for %d channels", k.Name, k.ICBlock, s.InC)
	case k.GEMMShape != gemmShape(s, k.icb(), k.Chunk) || (t%k.Chunk == 0) != (k.TailShape == shape.Conv{}) ||
		t%k.Chunk != 0 && k.TailShape != gemmShape(s, k.icb(), t%k.Chunk):
		return fmt.Errorf("%s: GEMM shapes %+v and %+v do not fit %d tiles in chunks of %d", k.Name, k.GEMMShape, k.TailShape, t, k.Chunk)
	case k.In == nil || k.Out == nil:
		return fmt.Errorf("%s: no transforms", k.Name)
	case k.icb()%k.gemm.Lanes != 0 || k.tail != nil && k.tail.BlockC() != k.gemm.BlockC():
		return fmt.Errorf("%s: %d input channels, or GEMM blocks of %d and %d channels", k.Name, s.InC, k.gemm.BlockC(), k.tail.BlockC())
	case k.gemm.TH != 1 || k.tail != nil && k.tail.TH != 1:
		return fmt.Errorf("%s: GEMM tiles must be one row high (product runs one tile row)", k.Name)
	}
	return nil
}

// gemmShape is the 1x1 convolution that multiplies n tiles of V_ξ by U_ξ,
// icb input channels at a time.
func gemmShape(s shape.Conv, icb, n int) shape.Conv {
	return shape.Conv{K: 1, Stride: 1, Pad: 0, InC: icb, OutC: s.OutC, InH: 1, InW: n, OutH: 1, OutW: n}
}

// icb is the input channels of one product call (ICBlock, or InC).
func (k *WinogradKernel) icb() int {
	if k.ICBlock == 0 {
		return k.Shape.InC
	}
	return k.ICBlock
}

// WinogradScratch is one worker's working memory for Winograd layers: one
// serves every Winograd layer of a network (FitScratch), since the layers
// run one at a time.
type WinogradScratch struct {
	v, m    []float32 // 36 planes of a chunk (or of a batch's images): transformed inputs, products
	edgeIn  []float32 // a 6×6 input tile that crosses the buffer's edge, zero-padded
	edgeOut []float32 // a 4×4 output tile that crosses the map's edge
	zero    []float32 // the GEMM's (zero) bias
	tmp     []float32 // the transforms' α×α intermediate vectors
}

// NewScratch allocates one worker's scratch for k and batches of up to
// images images (FitScratch).
func (k *WinogradKernel) NewScratch(images int) *WinogradScratch {
	sc := &WinogradScratch{}
	k.FitScratch(sc, images)
	return sc
}

// FitScratch grows sc where it is smaller than k needs for batches of up
// to images images (the planes of every image of a batch, for the layers
// computed in one chunk per image; one chunk's otherwise), keeping the
// room it has for other layers. A network's Winograd layers share one
// scratch per worker: the planes each layer writes and reads then stay
// cached from one layer to the next, where a scratch per layer went cold
// between images and every transform's stores first fetched their lines
// from memory. (Measured: docs/bench/history.md.)
func (k *WinogradKernel) FitScratch(sc *WinogradScratch, images int) {
	s := k.Shape
	n := k.planes()
	if k.Chunks() > 1 || images < 1 {
		images = 1
	}
	grow := func(p *[]float32, size int) {
		if len(*p) < size {
			*p = make([]float32, size)
		}
	}
	grow(&sc.v, images*k.planesLen(s.InC))
	grow(&sc.m, images*k.planesLen(s.OutC))
	grow(&sc.edgeIn, n*s.InC)
	grow(&sc.edgeOut, k.M*k.M*s.OutC)
	grow(&sc.zero, s.OutC)
	grow(&sc.tmp, n*16)
}

// PackWeights transforms OIHW 3x3 weights (BN folded) into U = G g G^T in
// float64 and writes each U_ξ[o][i] where the GEMM reads it.
func (k *WinogradKernel) PackWeights(oihw []float32) ([]float32, error) {
	g, a := winoG[k.M], k.alpha()
	s := k.Shape
	if len(oihw) != s.OutC*s.InC*9 {
		return nil, fmt.Errorf("%s: %d weights, want %d×%d×3×3", k.Name, len(oihw), s.OutC, s.InC)
	}
	packed := make([]float32, k.planes()*s.OutC*s.InC)
	icb, bc := k.icb(), k.BlockC()
	at := make([]int, k.planes())
	var gw [6][3]float64
	for b := 0; b < s.OutC/bc; b++ {
		for i := 0; i < s.InC; i++ {
			j, ic := i/icb, i%icb
			for xi := range at {
				at[xi] = k.panelAt(xi, b, j) + ic*bc
			}
			for jj := 0; jj < bc; jj++ {
				w := oihw[((b*bc+jj)*s.InC+i)*9:][:9]
				for x := 0; x < a; x++ {
					for c := 0; c < 3; c++ {
						gw[x][c] = g[x][0]*float64(w[c]) + g[x][1]*float64(w[3+c]) + g[x][2]*float64(w[6+c])
					}
				}
				for x := 0; x < a; x++ {
					for y := 0; y < a; y++ {
						packed[at[x*a+y]+jj] = float32(gw[x][0]*g[y][0] + gw[x][1]*g[y][1] + gw[x][2]*g[y][2])
					}
				}
			}
		}
	}
	return packed, nil
}

// blockMajor reports whether the packed U keeps each output channel
// block's α² panels together ([block][plane][InC][BlockC]) instead of each
// plane's blocks ([plane][block][InC][BlockC]): so on the layers computed
// in one chunk, whose U streams from memory, the products walk U in memory
// order whichever blocks a worker takes, and the GEMM kernels' prefetch of
// the next panel in memory (blocking.PrefetchNext in gen/kernels) asks for
// the panel the worker reads next. Plane-major, a worker with half the
// blocks jumped to the next plane after its last block, whose panel it had
// not prefetched, and had prefetched its neighbour's instead. Layers of
// several chunks stay plane-major: their U stays cached, and consecutive
// blocks of one plane reuse its tiles V_ξ from L1.
func (k *WinogradKernel) blockMajor() bool { return k.Chunks() == 1 }

// panelAt is the offset in the packed U of plane xi's panel for output
// block b, its input channel block j (ICBlock × BlockC floats; a panel's
// channel blocks follow each other).
func (k *WinogradKernel) panelAt(xi, b, j int) int {
	s := k.Shape
	nj := s.InC / k.icb()
	slice := k.icb() * k.BlockC()
	if k.blockMajor() {
		return ((b*k.planes()+xi)*nj + j) * slice
	}
	return ((xi*s.OutC/k.BlockC()+b)*nj + j) * slice
}

// panels calls f with every (plane, block) of blocks [b0, b1), in the
// packed U's memory order.
func (k *WinogradKernel) panels(b0, b1 int, f func(xi, b int)) {
	if k.blockMajor() {
		for b := b0; b < b1; b++ {
			for xi := range k.planes() {
				f(xi, b)
			}
		}
		return
	}
	for xi := range k.planes() {
		for b := b0; b < b1; b++ {
			f(xi, b)
		}
	}
}

// Check reports whether Run and RunPart accept these arguments.
func (k *WinogradKernel) Check(in, out Buffer, res *Buffer, packed, bias []float32) error {
	s := k.Shape
	if err := in.check(k.Name, "input", s.InH, s.InW, s.InC, 1); err != nil {
		return err
	}
	if err := out.check(k.Name, "output", s.OutH, s.OutW, s.OutC, 0); err != nil {
		return err
	}
	if res != nil {
		if err := res.check(k.Name, "residual", s.OutH, s.OutW, s.OutC, 0); err != nil {
			return err
		}
	}
	if n := k.planes() * s.OutC * s.InC; len(packed) != n || len(bias) != s.OutC {
		return fmt.Errorf("%s: %d packed weights and %d biases, want %d and %d", k.Name, len(packed), len(bias), n, s.OutC)
	}
	return nil
}

// Chunks is the number of tile chunks a layer is computed in.
func (k *WinogradKernel) Chunks() int {
	th, tw := k.Tiles()
	return (th*tw + k.Chunk - 1) / k.Chunk
}

// RunPart computes part of parts of the layer with the worker's scratch.
// Parts take whole chunks of tiles when there are at least as many chunks
// as parts; otherwise every part transforms every chunk's input and
// computes its share of the output channel blocks. Transforming each input
// tile once instead — parts transforming their share of the tiles into
// planes all of them read, with a barrier between — measured slower: the
// second barrier and half the planes coming from the other core's cache
// cost more than the duplicated transforms (docs/bench/history.md).
func (k *WinogradKernel) RunPart(in, out Buffer, res *Buffer, packed, bias []float32, relu bool, sc *WinogradScratch, part, parts int) {
	nc := k.Chunks()
	nb := k.Shape.OutC / k.BlockC()
	if nc >= parts {
		c0, c1 := part*nc/parts, (part+1)*nc/parts
		for c := c0; c < c1; c++ {
			k.chunk(in, out, res, packed, bias, relu, sc, c, 0, nb)
		}
		return
	}
	b0, b1 := part*nb/parts, (part+1)*nb/parts
	if b0 == b1 {
		return
	}
	for c := 0; c < nc; c++ {
		k.chunk(in, out, res, packed, bias, relu, sc, c, b0, b1)
	}
}

// chunk computes chunk c's tiles for output blocks [b0, b1).
func (k *WinogradKernel) chunk(in, out Buffer, res *Buffer, packed, bias []float32, relu bool, sc *WinogradScratch, c, b0, b1 int) {
	th, tw := k.Tiles()
	t0 := c * k.Chunk
	nt := min(k.Chunk, th*tw-t0)
	v, m := sc.v[:k.planesLen(k.Shape.InC)], sc.m[:k.planesLen(k.Shape.OutC)]
	k.transformIn(in, v, sc, t0, nt)
	gemm := k.gemm
	if nt < k.Chunk {
		gemm = k.tail
	}
	k.panels(b0, b1, func(xi, b int) {
		k.product(gemm, v, m, packed, sc.zero, xi, b, nt)
	})
	k.transformOut(m, out, res, bias, relu, sc, t0, nt, b0, b1)
}

// product computes plane xi's M = V·U for nt tiles and output block b, one
// input channel block at a time: the first sets M, the others add to it
// (as the residual of their 1x1 convolution, in place). It calls the GEMM's
// micro-kernels itself: a product is one tile row of a 1×nt map (validate),
// and the general driver (RunBlocks: buffers, bands, tile rows, index
// arithmetic) showed in profiles over the thousands of product calls of a
// Forward. The portable tier, which has no micro-kernels, goes through
// RunBlocks.
func (k *WinogradKernel) product(gemm *ConvKernel, v, m, packed, zero []float32, xi, b, nt int) {
	s := k.Shape
	icb := k.icb()
	bc := k.BlockC()
	mp := m[xi*k.planeStride(s.OutC):][:nt*s.OutC]
	if gemm.Main == nil {
		mb := Buffer{Data: mp, H: 1, W: nt, C: s.OutC}
		var acc *Buffer
		for j := range s.InC / icb {
			vb := Buffer{Data: v[xi*k.planeStride(s.InC)+j*k.Chunk*icb:][:nt*icb], H: 1, W: nt, C: icb}
			// RunBlocks reads block b's panel at b·panel of its weights:
			// start them that far before this panel.
			gemm.RunBlocks(vb, mb, acc, packed[k.panelAt(xi, b, j)-b*icb*bc:], zero, false, b, b+1)
			acc = &mb
		}
		return
	}
	// Tiles [0, tx) in full TW-tile columns, [tx, nt) in one narrower one.
	full, tx := nt/gemm.TW, nt/gemm.TW*gemm.TW
	inRow, outRow := uintptr(nt*icb*4), uintptr(nt*s.OutC*4)
	for j := range s.InC / icb {
		vp := v[xi*k.planeStride(s.InC)+j*k.Chunk*icb:][:nt*icb]
		u := &packed[k.panelAt(xi, b, j)]
		// The first input channel block sets M; the others add to it in
		// place, as their residual.
		flags := uintptr(0)
		if j > 0 {
			flags = FlagResidual
		}
		if full > 0 {
			out := &mp[b*bc]
			gemm.Main(&vp[0], u, &zero[0], out, out, inRow, outRow, outRow, flags, uintptr(full))
		}
		if tx < nt {
			out := &mp[tx*s.OutC+b*bc]
			gemm.RemCol(&vp[tx*icb], u, &zero[0], out, out, inRow, outRow, outRow, flags, 1)
		}
	}
}

// transformIn transforms the input tiles [t0, t0+nt) into the planes v
// (Chunk tiles apart).
func (k *WinogradKernel) transformIn(in Buffer, v []float32, sc *WinogradScratch, t0, nt int) {
	s := k.Shape
	_, tw := k.Tiles()
	m, a := k.M, k.alpha()
	lanes := k.Lanes()
	inPix, inRow := uintptr(s.InC*4), uintptr(in.RowStride()*4)
	vPlane := uintptr(k.planeStride(s.InC) * 4)
	icb := k.icb()
	nvec := uintptr(icb / lanes)
	// A plane holds its tiles' input channel block j at j·Chunk·icb, each
	// tile's icb channels together, as the GEMM of one block reads them.
	vAt := func(t, j int) *float32 { return &v[j*k.Chunk*icb+(t-t0)*icb] }
	for t := t0; t < t0+nt; t++ {
		y, x := (t/tw)*m-1, (t%tw)*m-1
		if y+a <= s.InH+in.Halo && x+a <= s.InW+in.Halo {
			for j := range s.InC / icb {
				k.In(&in.Data[in.Index(y, x, j*icb)], inRow, inPix, vAt(t, j), vPlane, nvec, &sc.tmp[0])
			}
			continue
		}
		// The tile crosses the zero halo's far edge: gather it, zero-padded.
		clear(sc.edgeIn[:k.planes()*s.InC])
		for dy := 0; dy < a && y+dy < s.InH+in.Halo; dy++ {
			for dx := 0; dx < a && x+dx < s.InW+in.Halo; dx++ {
				copy(sc.edgeIn[(dy*a+dx)*s.InC:][:s.InC], in.Data[in.Index(y+dy, x+dx, 0):][:s.InC])
			}
		}
		for j := range s.InC / icb {
			k.In(&sc.edgeIn[j*icb], uintptr(a*s.InC*4), inPix, vAt(t, j), vPlane, nvec, &sc.tmp[0])
		}
	}
}

// transformOut transforms the products of tiles [t0, t0+nt) (planes m,
// Chunk tiles apart) back into out, channels of blocks [b0, b1), adding the
// bias and the residual and applying ReLU.
func (k *WinogradKernel) transformOut(mpl []float32, out Buffer, res *Buffer, bias []float32, relu bool, sc *WinogradScratch, t0, nt, b0, b1 int) {
	s := k.Shape
	_, tw := k.Tiles()
	m := k.M
	lanes := k.Lanes()
	bc := k.BlockC()
	c0, nvec := b0*bc, (b1-b0)*bc/lanes
	var flags uintptr
	if relu {
		flags |= FlagReLU
	}
	outRow, outPix := uintptr(out.RowStride()*4), uintptr(s.OutC*4)
	mPlane := uintptr(k.planeStride(s.OutC) * 4)
	for t := t0; t < t0+nt; t++ {
		y, x := (t/tw)*m, (t%tw)*m
		mp := &mpl[(t-t0)*s.OutC+c0]
		if y+m <= s.OutH && x+m <= s.OutW {
			f := flags
			var rp *float32
			var resRow uintptr
			if res != nil {
				f |= FlagResidual
				rp, resRow = &res.Data[res.Index(y, x, c0)], uintptr(res.RowStride()*4)
			} else {
				rp = &out.Data[out.Index(y, x, c0)] // not read
			}
			k.Out(mp, mPlane, &bias[c0], rp, &out.Data[out.Index(y, x, c0)], resRow, outRow, outPix, f, uintptr(nvec), &sc.tmp[0])
			continue
		}
		// A tile past the map's edge: transform into scratch, then copy the
		// pixels that exist, adding the residual and applying ReLU here.
		e := sc.edgeOut
		k.Out(mp, mPlane, &bias[c0], &e[c0], &e[c0], uintptr(m*s.OutC*4), uintptr(m*s.OutC*4), outPix, 0, uintptr(nvec), &sc.tmp[0])
		for dy := 0; dy < m && y+dy < s.OutH; dy++ {
			for dx := 0; dx < m && x+dx < s.OutW; dx++ {
				src := e[(dy*m+dx)*s.OutC+c0:][:nvec*lanes]
				dst := out.Data[out.Index(y+dy, x+dx, c0):][:nvec*lanes]
				var r []float32
				if res != nil {
					r = res.Data[res.Index(y+dy, x+dx, c0):][:nvec*lanes]
				}
				for j, v := range src {
					if r != nil {
						v += r[j]
					}
					if relu && v < 0 {
						v = 0
					}
					dst[j] = v
				}
			}
		}
	}
}

// sharedWeightsMin is the size of transformed weights (bytes) from which
// RunBatch shares them across a batch: half of Zen 4's 1 MiB L2, the
// smallest L2 of our machines (Sapphire Rapids has 2 MiB), so smaller
// weights stay in a core's L2 from one image to the next.
const sharedWeightsMin = 512 << 10

// SharesWeights reports whether RunBatch runs a batch of n images plane by
// plane over all of them, reading transformed weights of bytes bytes once
// per batch: layers computed in one chunk per image whose weights do not
// stay cached anyway and outweigh the batch's transformed tiles and
// products, which sharing keeps for the whole batch instead of one image.
// At batch 8 14×14×256 by F(2,3) (4 MiB of weights, 12.8 MB of planes)
// no longer shares, 7×7×512 (16 MiB, 8 MB of planes) still does.
func (k *WinogradKernel) SharesWeights(bytes, n int) bool {
	th, tw := k.Tiles()
	planes := 4 * k.planes() * th * tw * (k.Shape.InC + k.Shape.OutC)
	return n > 1 && k.Chunks() == 1 && bytes >= sharedWeightsMin && bytes >= n*planes
}

// RunBatch computes part of parts of the layer for n images (n at most the
// scratch's images). A layer of one chunk per image whose transformed
// weights dominate (SharesWeights) shares its weights across the batch:
// each part transforms every image's tiles (a small fraction of the work),
// then runs plane by plane and block by block over all images, so each
// panel of U is read once per batch, then transforms its channels back.
// Other layers run image by image: whole images per part when they divide
// evenly, otherwise every image across the parts. So do layers whose
// transformed weights stay cached anyway (sharedWeightsMin) or weigh less
// than the batch's transformed tiles: there sharing buys little, while
// the batch's tiles spill from cache and each part transforms every image.
func (k *WinogradKernel) RunBatch(ins, outs, res []Buffer, n int, packed, bias []float32, relu bool, sc *WinogradScratch, part, parts int) {
	resOf := func(i int) *Buffer {
		if res == nil {
			return nil
		}
		return &res[i]
	}
	vSize, mSize := k.planesLen(k.Shape.InC), k.planesLen(k.Shape.OutC)
	fits := k.Chunks() == 1 && n*vSize <= len(sc.v) && n*mSize <= len(sc.m) // every image's planes at once
	if !fits || !k.SharesWeights(4*len(packed), n) {
		if n > 1 && n%parts == 0 {
			for i := part * n / parts; i < (part+1)*n/parts; i++ {
				k.RunPart(ins[i], outs[i], resOf(i), packed, bias, relu, sc, 0, 1)
			}
			return
		}
		for i := 0; i < n; i++ {
			k.RunPart(ins[i], outs[i], resOf(i), packed, bias, relu, sc, part, parts)
		}
		return
	}
	nb := k.Shape.OutC / k.BlockC()
	b0, b1 := part*nb/parts, (part+1)*nb/parts
	if b0 == b1 {
		return
	}
	th, tw := k.Tiles()
	nt := th * tw
	for i := 0; i < n; i++ {
		k.transformIn(ins[i], sc.v[i*vSize:][:vSize], sc, 0, nt)
	}
	k.panels(b0, b1, func(xi, b int) {
		for i := 0; i < n; i++ {
			k.product(k.gemm, sc.v[i*vSize:][:vSize], sc.m[i*mSize:][:mSize], packed, sc.zero, xi, b, nt)
		}
	})
	for i := 0; i < n; i++ {
		k.transformOut(sc.m[i*mSize:][:mSize], outs[i], resOf(i), bias, relu, sc, 0, nt, b0, b1)
	}
}
