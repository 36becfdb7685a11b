#include "image.hpp"

#include <cmath>
#include <cstdio>
#include <csetjmp>
#include <cstring>
#include <memory>

#include <jpeglib.h>
#include <webp/decode.h>
#define STBI_NO_JPEG  // JPEGs go to libjpeg-turbo (see image.hpp)
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

namespace runner {
namespace {

struct JpegError {
    jpeg_error_mgr manager;
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

void on_jpeg_error(j_common_ptr info) {
    auto* error = reinterpret_cast<JpegError*>(info->err);
    info->err->format_message(info, error->message);
    std::longjmp(error->jump, 1);
}

bool is_jpeg(FILE* file) {
    unsigned char magic[3] = {0, 0, 0};
    bool jpeg = std::fread(magic, 1, 3, file) == 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF;
    std::rewind(file);
    return jpeg;
}

// The EXIF orientation (tag 0x0112 of IFD0) of a JPEG's APP1 marker, 1 (upright) when there is none.
int exif_orientation(jpeg_decompress_struct& info) {
    for (jpeg_saved_marker_ptr m = info.marker_list; m; m = m->next) {
        const unsigned char* d = m->data;
        size_t n = m->data_length;
        if (m->marker != JPEG_APP0 + 1 || n < 14 || std::memcmp(d, "Exif\0\0", 6) != 0) continue;
        const unsigned char* tiff = d + 6;
        size_t size = n - 6;
        bool little = tiff[0] == 'I';
        auto u16 = [&](size_t at) { return at + 2 > size ? 0u : little ? tiff[at] | tiff[at + 1] << 8u : tiff[at] << 8u | tiff[at + 1]; };
        auto u32 = [&](size_t at) { return at + 4 > size ? 0u : little ? u16(at) | u16(at + 2) << 16u : u16(at) << 16u | u16(at + 2); };
        size_t ifd = u32(4);
        for (unsigned i = 0, count = u16(ifd); i < count; ++i) {
            size_t entry = ifd + 2 + 12 * i;
            if (u16(entry) == 0x0112) return static_cast<int>(u16(entry + 8));
        }
    }
    return 1;
}

// Pillow's ImageOps.exif_transpose: the stored pixels turned upright per the EXIF orientation.
Rgb upright(const Rgb& in, int orientation) {
    if (orientation < 2 || orientation > 8) return in;
    bool swap = orientation >= 5;
    int w = in.width, h = in.height;
    Rgb out{swap ? h : w, swap ? w : h, std::vector<unsigned char>(in.pixels.size())};
    for (int y = 0; y < out.height; ++y)
        for (int x = 0; x < out.width; ++x) {
            int sx = x, sy = y;
            switch (orientation) {
                case 2: sx = w - 1 - x; break;                  // FLIP_LEFT_RIGHT
                case 3: sx = w - 1 - x; sy = h - 1 - y; break;  // ROTATE_180
                case 4: sy = h - 1 - y; break;                  // FLIP_TOP_BOTTOM
                case 5: sx = y; sy = x; break;                  // TRANSPOSE
                case 6: sx = y; sy = h - 1 - x; break;          // ROTATE_270
                case 7: sx = w - 1 - y; sy = h - 1 - x; break;  // TRANSVERSE
                case 8: sx = w - 1 - y; sy = x; break;          // ROTATE_90
            }
            std::memcpy(&out.pixels[(static_cast<size_t>(y) * out.width + x) * 3],
                        &in.pixels[(static_cast<size_t>(sy) * w + sx) * 3], 3);
        }
    return out;
}

// Pillow's MULDIV255 and cmyk2rgb (libImaging/Convert.c), after its "CMYK;I" unpacking: JPEGs store CMYK inverted
// (Adobe's convention, which Pillow always assumes).
unsigned char muldiv255(int a, int b) {
    int tmp = a * b + 128;
    return static_cast<unsigned char>(((tmp >> 8) + tmp) >> 8);
}

Rgb decode_jpeg(FILE* file, const std::string& path) {
    jpeg_decompress_struct info;
    JpegError error;
    info.err = jpeg_std_error(&error.manager);
    error.manager.error_exit = on_jpeg_error;
    Rgb image;
    if (setjmp(error.jump)) {
        jpeg_destroy_decompress(&info);
        throw Problem("cannot read image " + path + ": " + error.message + "; pass a jpg/png/bmp/webp file");
    }
    jpeg_create_decompress(&info);
    jpeg_stdio_src(&info, file);
    jpeg_save_markers(&info, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&info, TRUE);
    bool cmyk = info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK;
    info.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;  // grayscale is replicated, as Pillow's convert("RGB")
    jpeg_start_decompress(&info);
    image.width = static_cast<int>(info.output_width);
    image.height = static_cast<int>(info.output_height);
    image.pixels.resize(static_cast<size_t>(image.width) * image.height * 3);
    std::vector<unsigned char> four(static_cast<size_t>(image.width) * 4);
    while (info.output_scanline < info.output_height) {
        unsigned char* rgb = &image.pixels[static_cast<size_t>(info.output_scanline) * image.width * 3];
        JSAMPROW row = cmyk ? four.data() : rgb;
        jpeg_read_scanlines(&info, &row, 1);
        for (int x = 0; cmyk && x < image.width; ++x) {
            int nk = four[4 * x + 3];  // 255 - k, k being the inverted stored value
            for (int c = 0; c < 3; ++c) rgb[3 * x + c] = static_cast<unsigned char>(nk - muldiv255(255 - four[4 * x + c], nk));
        }
    }
    int orientation = exif_orientation(info);
    jpeg_finish_decompress(&info);
    jpeg_destroy_decompress(&info);
    return upright(image, orientation);
}

// Pillow's Paste.c blend of a colour over white with an 8-bit alpha: DIV255(white * (255 - a) + c * a).
unsigned char over_white(int colour, int alpha) {
    int tmp = 255 * (255 - alpha) + colour * alpha + 128;
    return static_cast<unsigned char>(((tmp >> 8) + tmp) >> 8);
}

bool is_webp(FILE* file) {
    unsigned char magic[12] = {};
    bool webp = std::fread(magic, 1, 12, file) == 12 && std::memcmp(magic, "RIFF", 4) == 0 &&
                std::memcmp(magic + 8, "WEBP", 4) == 0;
    std::rewind(file);
    return webp;
}

// libwebp, the decoder Pillow is built with: Debian bookworm's 1.2.4 decodes the pixels Pillow's 1.6.0 does (every
// shipped photo re-encoded lossy, lossless and with alpha: identical); alpha composited on white as load_rgb does.
Rgb decode_webp(FILE* file, const std::string& path) {
    std::vector<uint8_t> data;
    unsigned char chunk[1 << 16];
    for (size_t n; (n = std::fread(chunk, 1, sizeof chunk, file)) > 0;) data.insert(data.end(), chunk, chunk + n);
    WebPBitstreamFeatures features;
    if (WebPGetFeatures(data.data(), data.size(), &features) != VP8_STATUS_OK)
        throw Problem("cannot read image " + path + ": not a WebP file libwebp can read; pass a jpg/png/bmp/webp file");
    int width = 0, height = 0, channels = features.has_alpha ? 4 : 3;
    std::unique_ptr<uint8_t, void (*)(void*)> pixels(
        features.has_alpha ? WebPDecodeRGBA(data.data(), data.size(), &width, &height)
                           : WebPDecodeRGB(data.data(), data.size(), &width, &height), WebPFree);
    if (!pixels) throw Problem("cannot read image " + path + ": a damaged WebP file; pass a jpg/png/bmp/webp file");
    size_t count = static_cast<size_t>(width) * height;
    Rgb image{width, height, std::vector<unsigned char>(count * 3)};
    for (size_t i = 0; i < count; ++i) {
        const uint8_t* p = pixels.get() + i * channels;
        int alpha = channels == 4 ? p[3] : 255;
        for (int c = 0; c < 3; ++c)
            image.pixels[3 * i + c] = alpha == 255 ? p[c] : over_white(p[c], alpha);
    }
    return image;
}

Rgb decode_other(FILE* file, const std::string& path) {
    int width = 0, height = 0, channels = 0;
    Rgb image;
    if (stbi_is_16_bit_from_file(file)) {
        // A 16-bit grayscale PNG opens in Pillow as "I;16": load_rgb scales it by 65535 (or 255 when no value
        // exceeds 255) and truncates to 8 bits. Colour 16-bit PNGs open as 8-bit RGB(A) (high bytes), as below.
        std::unique_ptr<stbi_us, void (*)(void*)> data(stbi_load_from_file_16(file, &width, &height, &channels, 0),
                                                       stbi_image_free);
        std::rewind(file);
        if (data && channels == 1) {
            size_t count = static_cast<size_t>(width) * height;
            int peak = 0;
            for (size_t i = 0; i < count; ++i) peak = std::max<int>(peak, data.get()[i]);
            double scale = peak > 255 ? 65535.0 : 255.0;
            image = {width, height, std::vector<unsigned char>(count * 3)};
            for (size_t i = 0; i < count; ++i) {
                double v = std::min(255.0, std::max(0.0, data.get()[i] / scale * 255.0));
                image.pixels[3 * i] = image.pixels[3 * i + 1] = image.pixels[3 * i + 2] = static_cast<unsigned char>(v);
            }
            return image;
        }
    }
    std::unique_ptr<stbi_uc, void (*)(void*)> data(stbi_load_from_file(file, &width, &height, &channels, 0),
                                                   stbi_image_free);
    if (!data)
        throw Problem("cannot read image " + path + ": " + stbi_failure_reason() + "; pass a jpg/png/bmp/webp file");
    size_t count = static_cast<size_t>(width) * height;
    image = {width, height, std::vector<unsigned char>(count * 3)};
    const unsigned char* in = data.get();
    for (size_t i = 0; i < count; ++i) {
        const unsigned char* p = in + i * channels;
        bool gray = channels <= 2;
        int alpha = channels == 2 ? p[1] : channels == 4 ? p[3] : 255;
        for (int c = 0; c < 3; ++c) {
            int colour = gray ? p[0] : p[c];
            image.pixels[3 * i + c] = alpha == 255 ? static_cast<unsigned char>(colour) : over_white(colour, alpha);
        }
    }
    return image;
}

// --- Pillow's resampling (libImaging/Resample.c), for 8-bit RGB --------------------------------------------

struct Filter {
    double support;
    double (*weight)(double);
};

double bicubic(double x) {  // Keys' cubic with a = -0.5
    const double a = -0.5;
    x = std::fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

double bilinear(double x) {
    x = std::fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

constexpr int PRECISION_BITS = 32 - 8 - 2;

struct Coefficients {
    int ksize = 0;
    std::vector<int> bounds;  // per output pixel: first input pixel, count
    std::vector<int> weights;  // per output pixel: ksize fixed-point weights
};

Coefficients coefficients(int in_size, int out_size, const Filter& filter) {
    double scale = static_cast<double>(in_size) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filter.support * filterscale;
    Coefficients k;
    k.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
    k.bounds.resize(2 * out_size);
    k.weights.assign(static_cast<size_t>(out_size) * k.ksize, 0);
    std::vector<double> w(k.ksize);
    for (int xx = 0; xx < out_size; ++xx) {
        double center = (xx + 0.5) * scale;
        double total = 0.0, ss = 1.0 / filterscale;
        int xmin = std::max(0, static_cast<int>(center - support + 0.5));
        int xmax = std::min(in_size, static_cast<int>(center + support + 0.5)) - xmin;
        for (int x = 0; x < xmax; ++x) {
            w[x] = filter.weight((x + xmin - center + 0.5) * ss);
            total += w[x];
        }
        for (int x = 0; x < xmax; ++x) {
            double v = total != 0.0 ? w[x] / total : w[x];
            k.weights[static_cast<size_t>(xx) * k.ksize + x] =
                static_cast<int>(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
        }
        k.bounds[2 * xx] = xmin;
        k.bounds[2 * xx + 1] = xmax;
    }
    return k;
}

unsigned char clip8(long long value) {
    value >>= PRECISION_BITS;
    return static_cast<unsigned char>(value < 0 ? 0 : value > 255 ? 255 : value);
}

Rgb resample_horizontal(const Rgb& in, int width, const Coefficients& k) {
    Rgb out{width, in.height, std::vector<unsigned char>(static_cast<size_t>(width) * in.height * 3)};
    for (int y = 0; y < in.height; ++y)
        for (int xx = 0; xx < width; ++xx) {
            int xmin = k.bounds[2 * xx], count = k.bounds[2 * xx + 1];
            const int* w = &k.weights[static_cast<size_t>(xx) * k.ksize];
            for (int c = 0; c < 3; ++c) {
                long long sum = 1 << (PRECISION_BITS - 1);
                for (int x = 0; x < count; ++x)
                    sum += static_cast<long long>(in.pixels[(static_cast<size_t>(y) * in.width + x + xmin) * 3 + c]) * w[x];
                out.pixels[(static_cast<size_t>(y) * width + xx) * 3 + c] = clip8(sum);
            }
        }
    return out;
}

Rgb resample_vertical(const Rgb& in, int height, const Coefficients& k) {
    Rgb out{in.width, height, std::vector<unsigned char>(static_cast<size_t>(in.width) * height * 3)};
    for (int yy = 0; yy < height; ++yy) {
        int ymin = k.bounds[2 * yy], count = k.bounds[2 * yy + 1];
        const int* w = &k.weights[static_cast<size_t>(yy) * k.ksize];
        for (int x = 0; x < in.width; ++x)
            for (int c = 0; c < 3; ++c) {
                long long sum = 1 << (PRECISION_BITS - 1);
                for (int y = 0; y < count; ++y)
                    sum += static_cast<long long>(in.pixels[(static_cast<size_t>(y + ymin) * in.width + x) * 3 + c]) * w[y];
                out.pixels[(static_cast<size_t>(yy) * in.width + x) * 3 + c] = clip8(sum);
            }
    }
    return out;
}

// Image.resize: the horizontal pass first (over every row: Pillow crops to the rows the vertical pass reads,
// which gives the same pixels), each pass only where that side changes.
Rgb resize(const Rgb& image, int width, int height, const std::string& interpolation) {
    Filter filter;
    if (interpolation == "bicubic") filter = {2.0, bicubic};
    else if (interpolation == "bilinear") filter = {1.0, bilinear};
    else throw Problem("this C++ runner resizes with bicubic or bilinear, the manifest asks for " + interpolation +
                       "; use run.py");
    Rgb out = image;
    if (width != image.width) out = resample_horizontal(out, width, coefficients(image.width, width, filter));
    if (height != image.height) out = resample_vertical(out, height, coefficients(image.height, height, filter));
    return out;
}

}  // namespace

Rgb load_rgb(const std::string& path) {
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
    if (!file) throw Problem("cannot read image " + path + ": no such readable file; pass a jpg/png/bmp/webp file");
    return is_jpeg(file.get()) ? decode_jpeg(file.get(), path)
         : is_webp(file.get()) ? decode_webp(file.get(), path) : decode_other(file.get(), path);
}

std::vector<float> preprocess(const Rgb& image, const json& pre) {
    int crop_h = pre["crop"][0], crop_w = pre["crop"][1];
    std::string interpolation = pre.value("interpolation", "bicubic");
    Rgb sized;
    int left = 0, top = 0;
    if (pre.value("resize_exact", false)) {
        sized = resize(image, crop_w, crop_h, interpolation);
    } else {
        double short_side = pre["resize_short_side"];
        double scale = std::max({short_side / std::min(image.width, image.height),
                                 static_cast<double>(crop_h) / image.height, static_cast<double>(crop_w) / image.width});
        // Python's round() rounds half to even, as std::nearbyint does in the default rounding mode
        int width = std::max(crop_w, static_cast<int>(std::nearbyint(image.width * scale)));
        int height = std::max(crop_h, static_cast<int>(std::nearbyint(image.height * scale)));
        sized = resize(image, width, height, interpolation);
        left = (sized.width - crop_w) / 2;
        top = (sized.height - crop_h) / 2;
    }
    std::vector<float> out(static_cast<size_t>(3) * crop_h * crop_w);
    for (int c = 0; c < 3; ++c) {
        float mean = pre["mean"][c].get<float>(), std = pre["std"][c].get<float>();
        for (int y = 0; y < crop_h; ++y)
            for (int x = 0; x < crop_w; ++x) {
                float v = sized.pixels[(static_cast<size_t>(y + top) * sized.width + x + left) * 3 + c] / 255.0f;
                out[(static_cast<size_t>(c) * crop_h + y) * crop_w + x] = (v - mean) / std;
            }
    }
    return out;
}

}  // namespace runner
