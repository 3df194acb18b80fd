package weightfile_test

import (
	"fmt"

	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/weightfile"
)

// Open a checkpoint, let its tensors name the network, and take the
// validated weights for it.
func Example() {
	f, err := weightfile.Open("../../../shared/data/cifar10-resnet/resnet20-12fca82f.th")
	if err != nil {
		fmt.Println(err)
		return
	}
	arch, err := f.Detect()
	if err != nil {
		fmt.Println(err)
		return
	}
	w, err := f.Weights(resnet.MustBuild(arch))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(f.Format, arch, len(w.Tensors), "tensors")
	// Output: pytorch cifar-resnet20 97 tensors
}
