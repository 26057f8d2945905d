/*
 * stb_image, compiled once, outside the project's strict warnings, with only
 * the four formats clipd accepts (Debian's libstb.so enables every format,
 * TGA's headerless guess included, so it is not linked).
 */
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_GIF
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
/* A hard ceiling on either side; clip_image_decode enforces the configured
 * pixel limit from the header before stb_image allocates anything. */
#define STBI_MAX_DIMENSIONS (1 << 16)
#include <stb/stb_image.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>
