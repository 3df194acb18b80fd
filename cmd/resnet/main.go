// Command resnet runs the networks of "Deep Residual Learning for Image
// Recognition" (He et al., CVPR 2016) from Go.
//
//	resnet flops [-json]                                   Table 1: multiply-adds and parameters
//	resnet eval [-arch cifar-resnet20] -weights W.th -data DIR [-json]
//	                                                       CIFAR-10 top-1 accuracy
//	resnet classify [-arch resnet50] -weights W img.jpg…   top-5 ImageNet classes of images
//	resnet run [-arch A] -weights W -in x.npy -out y.npy   logits of NCHW tensors, .npy in and out
//	resnet bench [-arch resnet50] [-threads N] [-batch N] [-json]
//	                                                       whole-network speed vs the FMA peak
//	resnet bench -kernels [-tier avx512,avx2] [-json]      kernel speed vs the FMA peak
//	resnet bench -layers -arch A [-chart f.svg]            every layer's time inside Forward
//	resnet bench -ort [-arch A,B] [-threads 1,2] [-batch 1,8]
//	                                                       side by side with ONNX Runtime
//	resnet tune                                            direct or Winograd, per shape, for this CPU
//	resnet serve [-arch A] -weights W [-addr 127.0.0.1:8000] [-grpc-addr 127.0.0.1:8001]
//	                                                       the Open Inference Protocol (KServe v2) over REST and gRPC
//	resnet loadtest -weights W [-clients 32] [-duration 20s]  images/s and p50/p99 latency, dynamic batching off and on
//
// Weights may be PyTorch checkpoints, safetensors or ONNX models; without
// -arch the network is the one the file's tensors fit.
//
// Errors go to standard error and make the exit status non-zero: 2 for bad
// usage, 1 for everything else.
package main

import (
	"flag"
	"io"
	"os"

	"github.com/resnetgen/resnetgen/cli"
)

var commands = []cli.Command{
	{Name: "flops", Summary: "print Table 1: multiply-adds (the paper's FLOPs) and parameters per depth", Run: runFlops},
	{Name: "eval", Summary: "measure top-1 accuracy of a CIFAR-10 ResNet on the CIFAR-10 test set", Run: runEval},
	{Name: "classify", Summary: "top-5 ImageNet classes of JPEG/PNG images (torchvision's eval preprocessing)", Run: runClassify},
	{Name: "run", Summary: "run a network on float32 NCHW tensors from a .npy file, write the logits as .npy", Run: runRun},
	{Name: "bench", Summary: "measure network (or, with -kernels, kernel) speed against the machine's FMA peak", Run: runBench},
	{Name: "tune", Summary: "measure direct and Winograd kernels on this CPU and cache the faster for each shape", Run: runTune},
	{Name: "serve", Summary: "serve a network over the Open Inference Protocol (KServe v2): REST and gRPC, dynamic batching", Run: runServe},
	{Name: "loadtest", Summary: "load a server (this one, batching off and on, or a running one) with concurrent clients: images/s, p50/p99", Run: runLoadtest},
}

// errUsage marks errors caused by how the command was called.
var errUsage = cli.ErrUsage

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	return cli.Run("resnet", commands, args, stdout, stderr)
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	return cli.NewFlags("resnet "+name, stderr)
}

// parse parses flags and refuses stray arguments.
func parse(fs *flag.FlagSet, args []string) error { return cli.Parse(fs, args) }
