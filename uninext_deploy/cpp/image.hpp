// Image in, model input out, as imaging.py does it (load_rgb, then preprocess), to the bit on the shipped photos:
// JPEGs are decoded by libjpeg-turbo, the decoder Pillow is built with (identical pixels, measured on every shipped
// photo; stb_image's own JPEG decoder differs by up to 3 levels on 4-5 % of the pixels), WebP by libwebp (Pillow's
// decoder too: identical pixels), other formats by stb_image (lossless, so identical); the resize is Pillow's two-pass resampling (its filters, support, fixed-point weights
// and 8-bit rounding between the passes), which no library reproduces.
#pragma once

#include <string>
#include <vector>

#include "runner.hpp"

namespace runner {

struct Rgb {
    int width = 0, height = 0;
    std::vector<unsigned char> pixels;  // row-major, 3 bytes a pixel
};

// Any JPEG (RGB, grayscale or CMYK, turned upright per its EXIF orientation), WebP, PNG, BMP, GIF, TGA or PNM
// file as 8-bit RGB; alpha is composited on white as load_rgb does.
Rgb load_rgb(const std::string& path);

// Resize, centre-crop and normalise per the manifest's "preprocessing" record: float32 (3, H, W).
std::vector<float> preprocess(const Rgb& image, const json& pre);

}  // namespace runner
