package enginetest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/engine"
)

// Tests ignore the tuning cache of the machine they run on: New reads none.
func TestTuningCacheIsOff(t *testing.T) {
	path, err := engine.TuningPath()
	require.NoError(t, err)
	assert.Equal(t, "off", path)
}
