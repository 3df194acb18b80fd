package weightfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/safetensors"
)

func writeSafetensors(t *testing.T, w *resnet.Weights) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "w.safetensors")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, safetensors.Write(f, w))
	require.NoError(t, f.Close())
	return path
}

func TestDetect(t *testing.T) {
	// resnet50's tensors are resnet50v1's too: the v1.5 name wins.
	for _, arch := range []string{"resnet18", "resnet50", "plain34", "cifar-resnet32"} {
		w := resnet.RandomWeights(resnet.MustBuild(arch), 1)
		f, err := Open(writeSafetensors(t, w))
		require.NoError(t, err)
		assert.Equal(t, Safetensors, f.Format)
		got, err := f.Detect()
		require.NoError(t, err, arch)
		assert.Equal(t, arch, got)
		loaded, err := f.Weights(resnet.MustBuild(arch))
		require.NoError(t, err)
		assert.Equal(t, w, loaded)
	}

	// A real checkpoint (upstream's CIFAR-10 ResNet-20, legacy format).
	f, err := Open("../../../shared/data/cifar10-resnet/resnet20-12fca82f.th")
	require.NoError(t, err, "the shared CIFAR-10 checkpoints are required (see ../shared/data)")
	assert.Equal(t, PyTorch, f.Format)
	got, err := f.Detect()
	require.NoError(t, err)
	assert.Equal(t, "cifar-resnet20", got)

	// One tensor missing: no network fits, and the error quotes the closest.
	w := resnet.RandomWeights(resnet.MustBuild("resnet34"), 2)
	delete(w.Tensors, "layer3.5.bn2.running_var")
	f, err = Open(writeSafetensors(t, w))
	require.NoError(t, err)
	_, err = f.Detect()
	assert.ErrorContains(t, err, "fit no catalogued network; the closest: weights do not fit resnet34: 1 missing tensors: layer3.5.bn2.running_var [256]")
	_, err = f.Weights(resnet.MustBuild("resnet34"))
	var v *resnet.ValidationError
	assert.ErrorAs(t, err, &v)
}

func TestV15Twin(t *testing.T) {
	lookup := func(name string) resnet.Arch {
		a, err := resnet.Lookup(name)
		require.NoError(t, err)
		return a
	}
	r50, r50v1, r101v1 := lookup("resnet50"), lookup("resnet50v1"), lookup("resnet101v1")
	assert.True(t, hasV15Twin(r50v1, []resnet.Arch{r50, r50v1}))
	assert.False(t, hasV15Twin(r50, []resnet.Arch{r50, r50v1}), "v1.5 is kept")
	assert.False(t, hasV15Twin(r50v1, []resnet.Arch{r50v1}), "a lone v1 is kept")
	assert.False(t, hasV15Twin(r101v1, []resnet.Arch{r50, r101v1}), "another depth is no twin")
}

func TestNotAWeightFile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"empty": "", "text": "hello, world", "short": "PK"} {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
		_, err := Open(path)
		assert.ErrorContains(t, err, "not a weight file", name)
	}
	_, err := Load(filepath.Join(dir, "absent.pth"), resnet.MustBuild("resnet18"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	// Truncated files of each format are the readers' tests; here one
	// shows the error passes through with the path.
	w := resnet.RandomWeights(resnet.MustBuild("cifar-resnet20"), 3)
	path := writeSafetensors(t, w)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b[:len(b)/2], 0o644))
	_, err = Open(path)
	assert.ErrorContains(t, err, path)
}

// Open reads what a file holds; Weights reads the values later, from the
// same file, and says so if the file changed in between.
func TestWeightsReadsTheFileOpenRead(t *testing.T) {
	net := resnet.MustBuild("cifar-resnet20")
	w := resnet.RandomWeights(net, 4)
	path := writeSafetensors(t, w)
	f, err := Open(path)
	require.NoError(t, err)
	got, err := f.Weights(net)
	require.NoError(t, err)
	assert.Equal(t, w, got)
	got, err = f.Weights(net)
	require.NoError(t, err, "a second read")
	assert.Equal(t, w, got)

	other := writeSafetensors(t, resnet.RandomWeights(net, 5))
	require.NoError(t, os.Rename(other, path))
	_, err = f.Weights(net)
	assert.ErrorContains(t, err, "changed after it was opened")
	require.NoError(t, os.Remove(path))
	_, err = f.Weights(net)
	assert.ErrorIs(t, err, os.ErrNotExist)
}
