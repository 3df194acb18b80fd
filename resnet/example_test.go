package resnet_test

import (
	"fmt"

	"github.com/resnetgen/resnetgen/resnet"
)

func ExampleBuild() {
	a, err := resnet.Lookup("resnet50")
	if err != nil {
		panic(err)
	}
	a.Variant = resnet.V1 // the paper's stride placement
	net, err := resnet.Build(a)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s: %.3f GMACs, %d parameters, %d layers\n", a.Name, float64(net.MACs())/1e9, net.Params(), len(net.Layers))
	l := net.Layers[len(net.Layers)-3] // the last bottleneck's expand conv
	fmt.Println(l.Name, l.InShape, "->", l.OutShape, "residual:", l.Residual != resnet.NoValue)
	// Output:
	// resnet50: 3.858 GMACs, 25557032 parameters, 56 layers
	// layer4.2.conv3 512x7x7 -> 2048x7x7 residual: true
}

func ExampleReference() {
	net := resnet.MustBuild("cifar-resnet20")
	w := resnet.RandomWeights(net, 1) // or pytorch.Load("resnet20-12fca82f.th")
	ref, err := resnet.NewReference(net, w)
	if err != nil {
		panic(err)
	}
	logits, err := ref.Forward(resnet.RandomInput(net, 2))
	if err != nil {
		panic(err)
	}
	fmt.Println(len(logits), "logits")
	_, err = ref.Forward(make([]float32, 10))
	fmt.Println(err)
	// Output:
	// 10 logits
	// cifar-resnet20: input has 10 values, want 3072 (3x32x32 CHW)
}
