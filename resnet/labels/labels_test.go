package labels

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		what, file string
		want       []string
	}{
		{"trailing newline", "cat\ndog\nbird\n", []string{"cat", "dog", "bird"}},
		{"no trailing newline", "cat\ndog\nbird", []string{"cat", "dog", "bird"}},
		{"CRLF", "cat\r\ndog\r\nbird\r\n", []string{"cat", "dog", "bird"}},
		{"CRLF, none at the end", "cat\r\ndog\r\nbird", []string{"cat", "dog", "bird"}},
		{"byte-order mark, spaces around names", "\uFEFF cat\t\ngreat white shark \n bird\n", []string{"cat", "great white shark", "bird"}},
		{"UTF-8 and inner punctuation", "chat, le\nperro's\n鳥\n", []string{"chat, le", "perro's", "鳥"}},
	} {
		got, err := Parse([]byte(c.file), 3)
		require.NoError(t, err, c.what)
		assert.Equal(t, c.want, got, c.what)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		file    string
		classes int
		want    string
	}{
		{"cat\ndog\n", 3, "2 labels, want 3 (the network's classes)"},
		{"cat\ndog\nbird\nfish\n", 3, "4 labels, want 3 (the network's classes)"},
		{"", 3, "0 labels, want 3 (the network's classes)"},
		{"\n", 1, "line 1: empty name"},
		{"cat\n\nbird\n", 3, "line 2: empty name"},
		{"cat\n  \t\nbird\n", 3, "line 2: empty name"},
		{"cat\r\n\r\nbird\r\n", 3, "line 2: empty name"},
		{"cat\ndog\nbird\n\n", 3, "4 labels, want 3 (the network's classes); line 4: empty name"},
		{"cat\ndog\nbird\n\n", 4, "line 4: empty name"},
		{"cat\ndog\ncat\n", 3, `line 3: "cat" again, as on line 1`},
		{"cat\ndog\r\n dog\n", 3, `line 3: "dog" again, as on line 2`},
		{"cat\nd\x00g\nbird\n", 3, `line 2: control character in "d\x00g"`},
		{"cat\rdog\rbird\r", 3, `1 labels, want 3 (the network's classes); line 1: control character in "cat\rdog\rbird"`},
		{"cat\n\uFEFFdog\n", 2, `line 2: byte-order mark in "\ufeffdog"`},
		{"cat\nd\xffg\nbird\n", 3, `line 2: not UTF-8: "d\xffg"`},
	} {
		_, err := Parse([]byte(c.file), c.classes)
		assert.EqualError(t, err, c.want, "%q", c.file)
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	good := write("good.txt", "cat\r\ndog\r\n")
	names, err := ReadFile(good, 2)
	require.NoError(t, err)
	assert.Equal(t, []string{"cat", "dog"}, names)

	bad := write("bad.txt", "cat\n\ndog\n")
	_, err = ReadFile(bad, 3)
	assert.EqualError(t, err, bad+":2: empty name")
	_, err = ReadFile(bad, 2)
	assert.EqualError(t, err, bad+": 3 labels, want 2 (the network's classes); line 2: empty name")
	dup := write("dup.txt", "cat\ndog\ncat\n")
	_, err = ReadFile(dup, 3)
	assert.EqualError(t, err, dup+`:3: "cat" again, as on line 1`)
	_, err = ReadFile(filepath.Join(dir, "missing.txt"), 3)
	assert.ErrorIs(t, err, os.ErrNotExist)

	// A file too large to be labels is refused before it is read whole.
	big, err := os.Create(filepath.Join(dir, "big.txt"))
	require.NoError(t, err)
	require.NoError(t, big.Truncate(MaxFileBytes+1))
	require.NoError(t, big.Close())
	_, err = ReadFile(big.Name(), 3)
	assert.ErrorContains(t, err, "over 67108864 bytes: not a labels file")
}

func TestCheck(t *testing.T) {
	assert.NoError(t, Check([]string{"cat", "dog"}, 2))
	assert.EqualError(t, Check([]string{"cat"}, 2), "1 labels, want 2 (the network's classes)")
	assert.EqualError(t, Check([]string{"cat", ""}, 2), "class 1: empty name")
	assert.EqualError(t, Check([]string{"cat", "cat"}, 2), `class 1: "cat" again, as class 0`)
	assert.EqualError(t, Check([]string{"cat", "dog "}, 2), `class 1: "dog " begins or ends with white space`)
	assert.EqualError(t, Check([]string{"cat", "d\ng"}, 2), `class 1: control character in "d\ng"`)
}

// The built-in lists follow the rules, and are copies.
func TestBuiltIn(t *testing.T) {
	in := ImageNet()
	require.NoError(t, Check(in, 1000))
	assert.Equal(t, "tench", in[0])
	assert.Equal(t, "toilet tissue", in[999])
	c := CIFAR10()
	require.NoError(t, Check(c, 10))
	assert.Equal(t, "airplane", c[0])
	assert.Equal(t, "truck", c[9])
	in[0], c[0] = "changed", "changed"
	assert.Equal(t, "tench", ImageNet()[0])
	assert.Equal(t, "airplane", CIFAR10()[0])

	// Written out one a line, each reads back as itself.
	for _, names := range [][]string{ImageNet(), CIFAR10()} {
		got, err := Parse([]byte(strings.Join(names, "\n")+"\n"), len(names))
		require.NoError(t, err)
		assert.Equal(t, names, got)
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte("cat\ndog\n"), 2)
	f.Add([]byte("cat\r\n\r\ndog"), 3)
	f.Add([]byte("\uFEFFa\nb\nc"), 3)
	f.Add([]byte("\uFEFF\uFEFFa\nb"), 2)
	f.Fuzz(func(t *testing.T, data []byte, classes int) {
		names, err := Parse(data, classes)
		if err != nil {
			return
		}
		// What Parse accepts, Check accepts, and it survives a round trip.
		require.NoError(t, Check(names, classes))
		again, err := Parse([]byte(strings.Join(names, "\r\n")), classes)
		require.NoError(t, err)
		require.Equal(t, names, again)
	})
}

// Top ranks by logit (ties in class order), names the classes and gives
// the softmax in float64: exp(l − max) / Σ exp(l − max).
func TestTop(t *testing.T) {
	logits := []float32{1, 3, -2, 3, 0.5}
	names := []string{"a", "b", "c", "d", "e"}
	got, err := Top(logits, 3, names)
	require.NoError(t, err)
	sum := 0.0
	for _, l := range logits {
		sum += math.Exp(float64(l) - 3)
	}
	assert.Equal(t, []Prediction{
		{Class: 1, Label: "b", Probability: 1 / sum},
		{Class: 3, Label: "d", Probability: 1 / sum},
		{Class: 0, Label: "a", Probability: math.Exp(-2) / sum},
	}, got)
	all, err := Top(logits, 5, nil)
	require.NoError(t, err)
	total := 0.0
	for i, p := range all {
		assert.Empty(t, p.Label)
		total += p.Probability
		if i > 0 {
			assert.LessOrEqual(t, p.Probability, all[i-1].Probability)
		}
	}
	assert.InDelta(t, 1, total, 1e-15)
	// Large logits do not overflow: the softmax is shifted by the largest.
	big, err := Top([]float32{1000, 999}, 1, nil)
	require.NoError(t, err)
	assert.InDelta(t, 1/(1+math.Exp(-1)), big[0].Probability, 1e-15)

	for _, c := range []struct {
		logits []float32
		k      int
		names  []string
		want   string
	}{
		{logits, 0, nil, "top 0 of 5 classes: want 1 to 5"},
		{logits, 6, nil, "top 6 of 5 classes: want 1 to 5"},
		{logits, 1, names[:4], "4 names for 5 classes"},
		{[]float32{1, float32(math.NaN())}, 1, nil, "logit 1 is NaN"},
		{[]float32{float32(math.Inf(1)), 1}, 1, nil, "logit 0 is +Inf"},
	} {
		_, err := Top(c.logits, c.k, c.names)
		assert.EqualError(t, err, c.want)
	}
}
