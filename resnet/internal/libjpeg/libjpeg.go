// Package libjpeg runs libjpeg-turbo's own command-line tools (cjpeg and
// djpeg, Debian's libjpeg-turbo-progs) for tests: cjpeg writes JPEGs of
// every kind we decode, djpeg decodes them with libjpeg's defaults (islow
// IDCT, fancy upsampling) — the same library and settings Pillow uses, so
// its output is the oracle our decoder is held to.
package libjpeg

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// Check reports why the tools cannot run, or nil.
func Check() error {
	for _, tool := range []string{"cjpeg", "djpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (apt-get install libjpeg-turbo-progs): %v", tool, err)
		}
	}
	return nil
}

// Scene returns a w×h RGB picture (interleaved) with what stresses a JPEG
// codec: smooth gradients, hard colour edges, fine diagonal lines and
// noise. It is deterministic for a given seed.
func Scene(w, h int, seed uint32) []uint8 {
	pix := make([]uint8, 3*w*h)
	state := seed*2654435761 + 1
	noise := func() float64 { // a small LCG: reproducible everywhere
		state = state*1664525 + 1013904223
		return float64(state>>8)/float64(1<<24)*24 - 12
	}
	for y := range h {
		for x := range w {
			fx, fy := float64(x), float64(y)
			c := [3]float64{
				255 * fx / float64(max(w-1, 1)),
				255 * fy / float64(max(h-1, 1)),
				128 + 100*math.Sin(fx/7+fy/11),
			}
			dx, dy := (fx-float64(w)/3)/(float64(w)/6+1), (fy-float64(h)/2)/(float64(h)/4+1)
			switch {
			case dx*dx+dy*dy < 1: // a red disc
				c = [3]float64{250, 30, 20}
			case x > 3*w/5 && x < 4*w/5 && y > h/6 && y < h/2: // a green box
				c = [3]float64{10, 200, 40}
			case (x+y)%9 == 0: // diagonal lines
				c = [3]float64{float64(x % 256), float64(255 - x%256), 90}
			}
			for i := range c {
				pix[3*(y*w+x)+i] = uint8(min(max(c[i]+noise(), 0), 255))
			}
		}
	}
	return pix
}

// Encode writes RGB pixels to a PPM and compresses them with
// `cjpeg args…`, returning the JPEG.
func Encode(dir string, w, h int, rgb []uint8, args ...string) ([]byte, error) {
	in := filepath.Join(dir, "in.ppm")
	ppm := append([]byte(fmt.Sprintf("P6\n%d %d\n255\n", w, h)), rgb...)
	if err := os.WriteFile(in, ppm, 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("cjpeg", append(args, in)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("cjpeg %v: %v: %s", args, err, stderr.String())
	}
	return out, nil
}

// Decode decompresses a JPEG with `djpeg args…` into a PNM and returns its
// samples: 1 per pixel (PGM) or 3 (PPM).
func Decode(dir string, jpeg []byte, args ...string) (w, h, channels int, pix []uint8, err error) {
	in := filepath.Join(dir, "in.jpg")
	if err := os.WriteFile(in, jpeg, 0o644); err != nil {
		return 0, 0, 0, nil, err
	}
	cmd := exec.Command("djpeg", append(append([]string{"-pnm"}, args...), in)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, 0, nil, fmt.Errorf("djpeg %v: %v: %s", args, err, stderr.String())
	}
	return parsePNM(out)
}

// parsePNM reads the binary P5/P6 files djpeg writes (maxval 255).
func parsePNM(b []byte) (w, h, channels int, pix []uint8, err error) {
	fields := make([]int, 0, 3)
	if len(b) < 2 || b[0] != 'P' || (b[1] != '5' && b[1] != '6') {
		return 0, 0, 0, nil, fmt.Errorf("not a binary PGM/PPM")
	}
	channels = 1
	if b[1] == '6' {
		channels = 3
	}
	i := 2
	for len(fields) < 3 {
		for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
			i++
		}
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		v, err := strconv.Atoi(string(b[i:j]))
		if err != nil {
			return 0, 0, 0, nil, fmt.Errorf("PNM header: %v", err)
		}
		fields = append(fields, v)
		i = j
	}
	w, h = fields[0], fields[1]
	if fields[2] != 255 || len(b)-i-1 != w*h*channels {
		return 0, 0, 0, nil, fmt.Errorf("PNM: maxval %d, %d bytes for %dx%dx%d", fields[2], len(b)-i-1, w, h, channels)
	}
	return w, h, channels, b[i+1:], nil
}

// A Case is a JPEG that cjpeg writes from a Scene.
type Case struct {
	Name string
	W, H int
	Args []string // cjpeg's options
}

// Cases covers what resnet/jpeg decodes: every chroma layout and RGB with sizes
// that are and are not multiples of the MCU, baseline and optimised
// Huffman tables, progressive scan scripts, restart intervals (in MCUs and
// in rows), grey, chroma planes of 1 and 2 samples, and the quality range.
var Cases = []Case{
	{"420 q90", 160, 96, []string{"-quality", "90"}},
	{"420 odd", 257, 193, []string{"-quality", "75"}},
	{"444 q95", 333, 250, []string{"-quality", "95", "-sample", "1x1"}},
	{"422 odd", 401, 299, []string{"-quality", "85", "-sample", "2x1"}},
	{"420 q100", 67, 45, []string{"-quality", "100"}},
	{"420 q10", 131, 77, []string{"-quality", "10"}},
	{"420 optimized", 120, 88, []string{"-optimize"}},
	{"420 progressive", 257, 193, []string{"-progressive"}},
	{"444 progressive", 99, 101, []string{"-progressive", "-sample", "1x1"}},
	{"422 progressive q97", 203, 150, []string{"-progressive", "-quality", "97", "-sample", "2x1"}},
	{"420 restart 3 MCUs", 200, 120, []string{"-restart", "3B"}},
	{"422 restart 1 row", 131, 77, []string{"-restart", "1", "-sample", "2x1"}},
	{"420 progressive restart", 150, 100, []string{"-progressive", "-restart", "5B"}},
	{"grey", 300, 260, []string{"-grayscale"}},
	{"grey progressive odd", 97, 61, []string{"-grayscale", "-progressive"}},
	{"grey restart", 90, 70, []string{"-grayscale", "-restart", "2B"}},
	{"2x2 luma 1x1 chroma, tiny", 5, 3, []string{"-sample", "2x2,1x1,1x1"}},
	{"1 pixel", 1, 1, nil},
	{"420, 2-sample-wide chroma", 3, 40, nil},
	{"422, 1-sample-wide chroma", 2, 9, []string{"-sample", "2x1"}},
	{"440 odd", 171, 125, []string{"-sample", "1x2"}},
	{"440 progressive, 1-row chroma", 50, 2, []string{"-sample", "1x2", "-progressive"}},
	{"411 odd", 203, 77, []string{"-sample", "4x1"}},
	{"410 progressive", 130, 97, []string{"-sample", "4x2", "-progressive"}},
	{"444 as 2x1 everywhere", 75, 41, []string{"-sample", "2x1,2x1,2x1"}},
	{"422 as 4x1 and 2x1", 83, 37, []string{"-sample", "4x1,2x1,2x1", "-progressive"}},
	{"RGB", 90, 61, []string{"-rgb"}},
	{"RGB progressive restart", 77, 50, []string{"-rgb", "-progressive", "-restart", "1"}},
}

// Encode writes the case's JPEG, failing the test if the tools are missing.
func (c Case) Encode(t testing.TB) []byte {
	t.Helper()
	if err := Check(); err != nil {
		t.Fatalf("the decoder is held to libjpeg's own output: %v", err)
	}
	data, err := Encode(t.TempDir(), c.W, c.H, Scene(c.W, c.H, uint32(c.W*c.H)), c.Args...)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
