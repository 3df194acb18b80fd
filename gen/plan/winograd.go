package plan

// WinogradF is one Winograd algorithm F(m×m, 3×3) (Lavin and Gray, 2016):
// tiles of m×m outputs from α×α inputs (α = m + 2), V = B^T d B the
// transformed input tile, Y = A^T M A the output tile of the products M.
// The transforms' matrices are here so that every backend renders the same
// arithmetic; G, which transforms the weights at New, is asm's.
type WinogradF struct {
	M, Alpha int
	BT       [][]float32 // α×α
	AT       [][]float32 // m×α
	InK      []float32   // the constants of B^T other than 0 and ±1
	OutK     []float32   // of A^T
}

// F4 is F(4×4, 3×3): 36 products per tile for 144 direct ones, with
// transformed weights 4 times the direct ones.
var F4 = WinogradF{M: 4, Alpha: 6,
	BT: [][]float32{
		{4, 0, -5, 0, 1, 0},
		{0, -4, -4, 1, 1, 0},
		{0, 4, -4, -1, 1, 0},
		{0, -2, -1, 2, 1, 0},
		{0, 2, -1, -2, 1, 0},
		{0, 4, 0, -5, 0, 1},
	},
	AT: [][]float32{
		{1, 1, 1, 1, 1, 0},
		{0, 1, -1, 2, -2, 0},
		{0, 1, 1, 4, 4, 0},
		{0, 1, -1, 8, -8, 1},
	},
	InK: []float32{2, 4, 5}, OutK: []float32{2, 4, 8},
}

// F2 is F(2×2, 3×3): 16 products per tile for 36 direct ones, with
// transformed weights only 16/9 the size of the direct ones: for the deep
// layers, whose weights stream from memory at batch 1.
var F2 = WinogradF{M: 2, Alpha: 4,
	BT: [][]float32{
		{1, 0, -1, 0},
		{0, 1, 1, 0},
		{0, -1, 1, 0},
		{0, 1, 0, -1},
	},
	AT: [][]float32{
		{1, 1, 1, 0},
		{0, 1, -1, -1},
	},
}

// winogradFits reports whether a layer can run Winograd on tier t: a 3x3
// stride-1 convolution with padding 1 whose channels come in whole vectors
// (the transforms work on vectors of channels; the 3-channel stems do not
// qualify).
func winogradFits(s Shape, t Tier) bool {
	return s.K == 3 && s.Stride == 1 && s.Pad == 1 && s.InC%t.Lanes == 0 && s.OutC%t.Lanes == 0
}

// minChunkTiles is the fewest tiles a layer is split into chunks of for
// parallelism alone: smaller products run below their peak (8×8 maps, 4
// tiles, keep one chunk: their 2-tile products are latency-bound).
const minChunkTiles = 8

// winogradGEMMs chooses the tiles per chunk and returns the 1x1 shapes of
// the products over a chunk and over the last, shorter chunk (zero if the
// chunks divide the tiles). A chunk's α² planes of transformed inputs and
// products (α²·tiles·(InC+OutC) floats) should stay in L2 between the
// transforms and the products, so chunks are small, but each chunk reads
// all the transformed weights U (α²·InC·OutC floats) again, so:
//
//   - U under 2 MiB (it stays in L2 or L3): chunks of at most 512 KiB of
//     planes, in an even number where there are several (two workers then
//     take as many chunks each).
//   - U of 2 to 4 MiB (read from L3 once per chunk): chunks of up to 1 MiB
//     of planes.
//   - U of 4 MiB or more (it streams from memory per chunk): as few chunks
//     as fit 4 MiB of planes — one for the 14×14 and 7×7 layers, which the
//     workers then split by output channels, each reading half of U.
//   - At least two chunks of minChunkTiles where U stays cached, so two
//     workers split a small layer by tiles: in one chunk they split it by
//     output channel blocks, and a layer of 16 or 32 channels has one
//     block, so the second worker idled.
func winogradGEMMs(s Shape, f WinogradF) (chunk int, gemm, tail Shape) {
	tiles := ((s.OutH + f.M - 1) / f.M) * ((s.OutW + f.M - 1) / f.M)
	n2 := f.Alpha * f.Alpha
	perTile := n2 * 4 * (s.InC + s.OutC)
	budget := 512 << 10
	switch {
	case streamsWeights(s, f):
		budget = 4 << 20
	case uBytes(s, f) >= 2<<20:
		budget = 1 << 20
	}
	n := (tiles*perTile + budget - 1) / budget // chunks
	if n == 1 && !streamsWeights(s, f) && tiles >= 2*minChunkTiles {
		n = 2
	}
	if n > 1 && n%2 == 1 {
		n++
	}
	n = max(1, min(n, tiles))
	chunk = (tiles + n - 1) / n
	shape := func(n int) Shape {
		return Shape{K: 1, Stride: 1, Pad: 0, InC: icBlock(s, f), OutC: s.OutC, InH: 1, InW: n, OutH: 1, OutW: n}
	}
	gemm = shape(chunk)
	if r := tiles % chunk; r > 0 {
		tail = shape(r)
	}
	return chunk, gemm, tail
}

// icBlock is the input channels of one product call (asm.WinogradKernel.
// ICBlock): 128 for the layers whose U streams from memory, so that a call
// reads a 128-channel slice of a weight panel from memory with its first
// tile and its other tiles re-read it from L1, and the stream of U never
// pauses for long (with whole panels the hardware prefetcher stopped while
// the other tiles re-read the panel from L2); all of InC elsewhere.
func icBlock(s Shape, f WinogradF) int {
	if streamsWeights(s, f) && s.InC > 128 && s.InC%128 == 0 {
		return 128
	}
	return s.InC
}

// uBytes is the size of a layer's transformed weights U: α²·InC·OutC floats.
func uBytes(s Shape, f WinogradF) int { return f.Alpha * f.Alpha * 4 * s.InC * s.OutC }

// streamsWeights reports whether a layer's transformed weights U are 4 MiB
// or more: they do not stay cached from one image to the next and stream
// from memory, so chunks are as large as fit 4 MiB of planes and the
// products split their input channels (winogradGEMMs, icBlock).
func streamsWeights(s Shape, f WinogradF) bool {
	return uBytes(s, f) >= 4<<20
}

// prefetchesWeights reports whether a layer's products prefetch the next
// panel of U (Blocking.PrefetchNext): U of 2 MiB or more, more than a Zen
// L2, which inside a network comes from memory, not L3, however often a
// chunk re-reads it. The smaller U of 56×56×64 (0.6 MB) is left out:
// prefetching it lost on Zen 4 and gained little on Zen 5.
func prefetchesWeights(s Shape, f WinogradF) bool {
	return uBytes(s, f) >= 2<<20
}

// winoFor picks the algorithms of a layer, the first being New's default
// where the CPU rule takes Winograd: F(2,3) alone where F(4,3)'s
// transformed weights (36·InC·OutC floats) pass 16 MiB (7×7×512: F(4,3)
// streams 38 MiB a layer and lost to the direct kernel), both from 4 MiB
// with F(2,3) first (14×14×256: F(4,3) wins alone on one thread, F(2,3)
// inside the networks, where its 4 MiB stream instead of 9), F(4,3) below.
func winoFor(s Shape) []WinogradF {
	switch u := uBytes(s, F4); {
	case u > 16<<20:
		return []WinogradF{F2}
	case u >= 4<<20:
		return []WinogradF{F2, F4}
	}
	return []WinogradF{F4}
}
