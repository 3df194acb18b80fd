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
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

type command struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"flops", "print Table 1: multiply-adds (the paper's FLOPs) and parameters per depth", runFlops},
	{"eval", "measure top-1 accuracy of a CIFAR-10 ResNet on the CIFAR-10 test set", runEval},
	{"classify", "top-5 ImageNet classes of JPEG/PNG images (torchvision's eval preprocessing)", runClassify},
	{"run", "run a network on float32 NCHW tensors from a .npy file, write the logits as .npy", runRun},
	{"bench", "measure network (or, with -kernels, kernel) speed against the machine's FMA peak", runBench},
	{"tune", "measure direct and Winograd kernels on this CPU and cache the faster for each shape", runTune},
	{"serve", "serve a network over the Open Inference Protocol (KServe v2): REST and gRPC, dynamic batching", runServe},
	{"loadtest", "load a server (this one, batching off and on, or a running one) with concurrent clients: images/s, p50/p99", runLoadtest},
}

// errUsage marks errors caused by how the command was called.
var errUsage = errors.New("usage")

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, "usage: resnet <command> [flags]\n\ncommands:")
		for _, c := range commands {
			fmt.Fprintf(stderr, "  %-6s %s\n", c.name, c.summary)
		}
		fmt.Fprintln(stderr, "\nrun 'resnet <command> -h' for a command's flags")
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "help" {
		usage()
		return 2
	}
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(args[1:], stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 2
			case errors.Is(err, errUsage):
				fmt.Fprintf(stderr, "resnet %s: %v\n", c.name, err)
				return 2
			}
			fmt.Fprintf(stderr, "resnet %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "resnet: unknown command %q\n", args[0])
	usage()
	return 2
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("resnet "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses flags and refuses stray arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}
