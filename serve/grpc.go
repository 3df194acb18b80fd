package serve

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/resnetgen/resnetgen/serve/inferpb"
)

// grpcService is the GRPCInferenceService of the protocol.
type grpcService struct {
	inferpb.UnimplementedGRPCInferenceServiceServer
	s *Server
}

// grpcError maps an error to the protocol's gRPC status: INVALID_ARGUMENT
// for a bad request, NOT_FOUND for an unknown model, UNAVAILABLE when the
// queue is full or the server is stopping.
func grpcError(err error) error {
	var b *badRequest
	var nf *notFoundError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &b):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.As(err, &nf):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrOverloaded), errors.Is(err, ErrClosed):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func (g *grpcService) ServerLive(context.Context, *inferpb.ServerLiveRequest) (*inferpb.ServerLiveResponse, error) {
	return &inferpb.ServerLiveResponse{Live: true}, nil
}

func (g *grpcService) ServerReady(context.Context, *inferpb.ServerReadyRequest) (*inferpb.ServerReadyResponse, error) {
	return &inferpb.ServerReadyResponse{Ready: true}, nil
}

func (g *grpcService) ModelReady(_ context.Context, r *inferpb.ModelReadyRequest) (*inferpb.ModelReadyResponse, error) {
	if _, err := g.s.modelVersion(r.GetName(), r.GetVersion()); err != nil {
		return nil, grpcError(err)
	}
	return &inferpb.ModelReadyResponse{Ready: true}, nil
}

func (g *grpcService) ServerMetadata(context.Context, *inferpb.ServerMetadataRequest) (*inferpb.ServerMetadataResponse, error) {
	m := g.s.serverMetadata()
	return &inferpb.ServerMetadataResponse{Name: m["name"].(string), Version: m["version"].(string), Extensions: m["extensions"].([]string)}, nil
}

func (g *grpcService) ModelMetadata(_ context.Context, r *inferpb.ModelMetadataRequest) (*inferpb.ModelMetadataResponse, error) {
	md, err := g.s.modelVersion(r.GetName(), r.GetVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	m := md.metadata()
	tensors := func(ts []tensorMetadata) []*inferpb.ModelMetadataResponse_TensorMetadata {
		var out []*inferpb.ModelMetadataResponse_TensorMetadata
		for _, t := range ts {
			out = append(out, &inferpb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape})
		}
		return out
	}
	return &inferpb.ModelMetadataResponse{Name: m.Name, Versions: m.Versions, Platform: m.Platform,
		Inputs: tensors(m.Inputs), Outputs: tensors(m.Outputs)}, nil
}

// ModelInfer takes the input from raw_input_contents or from contents
// (fp32_contents, bytes_contents), and answers in the same form: raw
// outputs for a raw request, contents otherwise.
func (g *grpcService) ModelInfer(ctx context.Context, r *inferpb.ModelInferRequest) (*inferpb.ModelInferResponse, error) {
	start := time.Now()
	resp, err := g.modelInfer(ctx, r)
	g.s.observe(r.GetModelName(), "grpc", start, err)
	return resp, grpcError(err)
}

func (g *grpcService) modelInfer(ctx context.Context, r *inferpb.ModelInferRequest) (*inferpb.ModelInferResponse, error) {
	if _, err := g.s.modelVersion(r.GetModelName(), r.GetModelVersion()); err != nil {
		return nil, err
	}
	raw := len(r.GetRawInputContents()) > 0
	if raw && len(r.GetRawInputContents()) != len(r.GetInputs()) {
		return nil, bad("%d raw_input_contents for %d inputs", len(r.GetRawInputContents()), len(r.GetInputs()))
	}
	var inputs []inferInput
	for i, in := range r.GetInputs() {
		if err := checkShape(in.GetShape(), i); err != nil {
			return nil, err
		}
		x := inferInput{name: in.GetName(), datatype: in.GetDatatype(), shape: in.GetShape()}
		switch in.GetDatatype() {
		case "FP32":
			if raw {
				var err error
				if x.fp32, err = decodeFP32(r.GetRawInputContents()[i], fmt.Sprintf("raw_input_contents[%d]", i)); err != nil {
					return nil, err
				}
			} else {
				x.fp32 = in.GetContents().GetFp32Contents()
			}
		case "BYTES":
			if raw {
				var err error
				if x.bytes, err = splitBytes(r.GetRawInputContents()[i], i); err != nil {
					return nil, err
				}
			} else {
				x.bytes = in.GetContents().GetBytesContents()
			}
		default:
			return nil, bad("inputs[%d].datatype is %q; want FP32 or BYTES", i, in.GetDatatype())
		}
		inputs = append(inputs, x)
	}
	var outputs []outputRequest
	for i, o := range r.GetOutputs() {
		or := outputRequest{name: o.GetName()}
		for k, v := range o.GetParameters() {
			switch k {
			case "classification":
				n, ok := v.GetParameterChoice().(*inferpb.InferParameter_Int64Param)
				if !ok || n.Int64Param < 1 {
					return nil, bad("outputs[%d].parameters.classification: want an int64_param of 1 or more", i)
				}
				or.classify = int(n.Int64Param)
			case "binary_data":
				// The REST extension's parameter; gRPC has raw contents.
			default:
				return nil, bad("outputs[%d].parameters.%s is not a parameter this server knows", i, k)
			}
		}
		outputs = append(outputs, or)
	}
	res, err := g.s.infer(ctx, r.GetModelName(), inputs, outputs)
	if err != nil {
		return nil, err
	}
	resp := &inferpb.ModelInferResponse{ModelName: r.GetModelName(), ModelVersion: Version, Id: r.GetId()}
	for _, o := range res.outputs {
		t := &inferpb.ModelInferResponse_InferOutputTensor{Name: o.name, Datatype: o.datatype, Shape: o.shape}
		switch {
		case raw && o.datatype == "FP32":
			resp.RawOutputContents = append(resp.RawOutputContents, encodeFP32(o.fp32))
		case raw:
			resp.RawOutputContents = append(resp.RawOutputContents, joinBytes(o.bytes))
		case o.datatype == "FP32":
			t.Contents = &inferpb.InferTensorContents{Fp32Contents: o.fp32}
		default:
			t.Contents = &inferpb.InferTensorContents{BytesContents: o.bytes}
		}
		resp.Outputs = append(resp.Outputs, t)
	}
	return resp, nil
}
