package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The input is the ORT runner's, float for float: its formula in double
// arithmetic, rounded to float32 once (runner.js: ((i*7919)%401)/100 - 2
// into a Float32Array).
func TestVersusInput(t *testing.T) {
	in := VersusInput(1000)
	assert.Equal(t, float32(-2), in[0])
	assert.Equal(t, float32(1), in[1])
	for _, v := range in {
		require.True(t, v >= -2 && v <= 2, "%v", v)
	}
	// Rounding k/100 to float32 and then the difference, as the runner
	// does not, gives another float for about half the k (i=2 is k=199:
	// -0.00999999 instead of -0.01).
	assert.Equal(t, float32(-0.01), in[2])
	assert.NotEqual(t, float32(199)/100-2, in[2])
}

// logitsDiff is relative to ORT's largest logit, and refuses what cannot
// be compared.
func TestLogitsDiff(t *testing.T) {
	d, err := logitsDiff([]float32{1, -4.0004, 2}, []float32{1, -4, 2})
	require.NoError(t, err)
	assert.InDelta(t, 1e-4, d, 1e-7)
	_, err = logitsDiff([]float32{1}, []float32{1, 2})
	assert.ErrorContains(t, err, "1 logits, ORT 2")
	_, err = logitsDiff([]float32{1}, []float32{0})
	assert.ErrorContains(t, err, "all zero")
}
