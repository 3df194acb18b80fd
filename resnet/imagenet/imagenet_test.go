package imagenet

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The list itself is checked against torchvision's in cmd/resnet's
// TestTorchvisionInterop; this checks the embedding.
func TestClasses(t *testing.T) {
	assert.Len(t, Classes, 1000)
	seen := map[string]int{}
	for i, c := range Classes {
		assert.NotEmpty(t, c, "class %d", i)
		if j, dup := seen[c]; dup {
			t.Errorf("classes %d and %d are both %q", j, i, c)
		}
		seen[c] = i
	}
}
