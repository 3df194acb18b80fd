// Package resnet is the hand-written heart of resnetgen: the networks of
// "Deep Residual Learning for Image Recognition" (He et al., CVPR 2016)
// described as data, and a slow, obviously correct float64 reference.
//
// An Arch (Lookup("resnet50"), Lookup("cifar-resnet20"), …) is unrolled by
// Build into a Network: a list of layers, each naming its op, kernel, stride,
// padding, input and output shapes, the values it reads and writes, and the
// checkpoint tensors it uses (torchvision naming). Everything else — MAC and
// parameter counts, weight validation, the reference forward pass, and later
// the kernel and graph generators — reads that one list.
//
// Covered: ImageNet ResNet-18/34/50/101/152 exactly as the paper's Table 1,
// with the bottleneck stride on the 3x3 (v1.5, torchvision, the default) or
// on the first 1x1 (v1, the paper: names ending in "v1"); the shortcut
// options A, B (default) and C of Table 3; the plain baselines plain18 and
// plain34; and the CIFAR-10 ResNets with 6n+2 layers (cifar-resnet20 …
// cifar-resnet1202), which use option A.
//
//	net := resnet.MustBuild("resnet50")
//	fmt.Println(net.MACs(), net.Params()) // 4089184256 25557032
//	w, err := pytorch.Load("resnet50.pth")      // package resnet/pytorch
//	ref, err := resnet.NewReference(net, w)     // validates names and shapes
//	logits, err := ref.Forward(image)           // CHW float32, normalised
package resnet
