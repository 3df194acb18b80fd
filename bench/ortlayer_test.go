package bench

import (
	"github.com/stretchr/testify/assert"
	"testing"
)

// ORT's profile names (its optimised graph's nodes) map to our layers.
func TestORTLayer(t *testing.T) {
	for node, want := range map[string]string{
		"/layer1/layer1.0/conv1/Conv":                   "layer1.0.conv1",
		"/conv1/Conv":                                   "conv1",
		"/layer2/layer2.0/downsample/downsample.0/Conv": "layer2.0.downsample.0",
		"/fc/Gemm":                                    "fc",
		"/maxpool/MaxPool":                            "maxpool",
		"/avgpool/GlobalAveragePool":                  "avgpool",
		"/layer3/layer3.5/conv3/Conv":                 "layer3.5.conv3",
		"/layer1/layer1.0/relu/Relu_output_0_nchwc":   "layer1.0.conv1",
		"/layer1/layer1.0/relu_1/Relu_output_0_nchwc": "layer1.0.conv2",
		"/layer1/layer1.0/conv2/Conv_output_0_nchwc":  "layer1.0.conv2",
		"/relu/Relu_output_0_nchwc":                   "conv1",
		"/maxpool/MaxPool_output_0_nchwc":             "maxpool",
	} {
		assert.Equal(t, want, ORTLayer(node), node)
	}
}
