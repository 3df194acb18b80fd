package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/cifar/resnet20"
	"github.com/resnetgen/resnetgen/resnet/cifar10"
	"github.com/resnetgen/resnetgen/serve"
)

// A generated package served from Go: the published CIFAR-10 ResNet-20
// (this repository's test data) over REST on a loopback port, and one test
// image classified by a client with the classification extension. A
// package you generated is served the same way, with its own New.
func Example() {
	srv, err := serve.New([]serve.Spec{{
		Name: "cifar-resnet20", Arch: resnet20.Arch,
		InputH: resnet20.InputHeight, InputW: resnet20.InputWidth, Classes: resnet20.Classes,
		Labels: cifar10.ClassNames[:],
		// One replica of the model, taking batches of up to batch images.
		New: func(batch int) (serve.Network, error) {
			return resnet20.LoadFile(cifarWeights, engine.WithBatch(batch))
		},
	}}, serve.Options{MaxBatch: 8, MaxDelay: 2 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	running, err := srv.Serve(serve.Listeners{HTTP: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		running.Shutdown(ctx) // finishes the requests already accepted, for 30 s at most
	}()

	// The client: the first CIFAR-10 test image, normalised, as JSON.
	images, err := cifar10.ReadFile(cifarTest)
	if err != nil {
		log.Fatal(err)
	}
	x := make([]float32, resnet20.InputLen)
	images[0].Normalize(x)
	body, _ := json.Marshal(map[string]any{
		"inputs":  []any{map[string]any{"name": "input", "shape": []int{1, 3, 32, 32}, "datatype": "FP32", "data": x}},
		"outputs": []any{map[string]any{"name": "logits", "parameters": map[string]any{"classification": 2}}},
	})
	client := &http.Client{Timeout: 30 * time.Second} // a client that gives up, as every client should
	resp, err := client.Post("http://"+running.HTTPAddr.String()+"/v2/models/cifar-resnet20/infer", "application/json", bytes.NewReader(body))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		Outputs []struct {
			Shape []int
			Data  []string // "score:index:label"
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status, answer.Outputs[0].Shape)
	for _, s := range answer.Outputs[0].Data {
		f := strings.SplitN(s, ":", 3)
		fmt.Println(f[1], f[2]) // the score's last digits depend on the SIMD tier
	}
	// Output:
	// 200 OK [1 2]
	// 3 cat
	// 5 dog
}
