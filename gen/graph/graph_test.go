package graph

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/resnet"
)

// A user's package tests its own kernels in full; a family package that
// shares another's kernels tells its tests where they are tested.
func TestTestsNameTheKernelsTheyShare(t *testing.T) {
	net := resnet.MustBuild("cifar-resnet20")
	tr := engine.DefaultTransform(net)
	own, err := Emit(Spec{Pkg: "pets", Net: net, Transform: tr})
	require.NoError(t, err)
	assert.NotContains(t, string(own["model_test.go"]), "KernelsOf")
	assert.Contains(t, string(own["model_test.go"]), "Every kernel of this package, on every tier")
	shared, err := Emit(Spec{Pkg: "pets", Net: net, Transform: tr, KernelsOf: "../resnet20"})
	require.NoError(t, err)
	assert.Contains(t, string(shared["model_test.go"]), `KernelsOf: "../resnet20",`)
	assert.Contains(t, string(shared["model_test.go"]), "Each kernel of this package is ../resnet20's")
	assert.Equal(t, string(own["model.go"]), string(shared["model.go"]), "the package itself is the same")
}
