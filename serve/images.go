package serve

import "github.com/resnetgen/resnetgen/resnet/preprocess"

// ImageNet is Spec.Images for networks that take 224x224 images trained
// as torchvision's are: a JPEG or PNG file (at most preprocess.MaxPixels),
// through torchvision's eval transform (resize the shorter side to 256,
// centre crop 224, ImageNet normalisation), as resnet classify does.
func ImageNet(file []byte) ([]float32, error) {
	img, err := preprocess.Decode(file)
	if err != nil {
		return nil, err
	}
	return preprocess.ImageNet(img)
}
