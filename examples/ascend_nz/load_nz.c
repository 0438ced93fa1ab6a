/*
 * load_nz.c: one FRACTAL_NZ tensor of a device image (`ckpt convert ... --nz all`) copied to an
 * Ascend device and described to AscendCL, from the fields convert records
 * (docs/targets.md, "Device images"):
 *
 *   device.acl_format      -> aclCreateTensor's format (29, ACL_FORMAT_FRACTAL_NZ)
 *   device.acl_dtype       -> its dataType
 *   device.view_shape      -> viewDims, with row-major strides (the logical matrix;
 *                             orientation "out,in": a matmul's weight taken with transposeX2)
 *   device.storage_shape   -> storageDims (..., ceil(N/C0), ceil(M/16), 16, C0)
 *   device.storage_nbytes  -> the bytes to aclrtMalloc and copy, padding included
 *
 * It needs CANN (acl/acl.h, aclnn/acl_meta.h, libascendcl, libnnopbase) and a device, so
 * `make check` neither builds nor runs it.  With CANN installed:
 *
 *   cc -std=c11 load_nz.c -I$ASCEND_HOME/include -L$ASCEND_HOME/lib64 -lascendcl -lnnopbase \
 *      $(pkg-config --cflags --libs jansson) -o load_nz
 *   ./load_nz DEVICE_IMAGE model.layers.0.mlp.down_proj.weight
 */
#include <acl/acl.h>
#include <aclnn/acl_meta.h>

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIMS 16

/* The manifest's entry for `name`, or NULL. */
static json_t *find_tensor(json_t *manifest, const char *name)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(manifest, "tensors"), i, t) {
        const char *n = json_string_value(json_object_get(t, "name"));
        if (n && strcmp(n, name) == 0)
            return t;
    }
    return NULL;
}

static size_t dims_of(const json_t *a, int64_t *dims)
{
    size_t n = json_array_size(a);
    for (size_t d = 0; d < n && d < MAX_DIMS; d++)
        dims[d] = json_integer_value(json_array_get(a, d));
    return n < MAX_DIMS ? n : MAX_DIMS;
}

/* The tiles as stored: the shard's data starts after its 8-byte header length and the header. */
static void *read_tiles(const char *folder, const json_t *t, size_t nbytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", folder, json_string_value(json_object_get(t, "file")));
    FILE *f = fopen(path, "rb");
    uint8_t len[8];
    void *bytes = malloc(nbytes);
    if (!f || !bytes || fread(len, 1, 8, f) != 8) {
        free(bytes);
        bytes = NULL;
    } else {
        uint64_t header = 0;
        for (int k = 7; k >= 0; k--)
            header = header << 8 | len[k];
        long at = (long)(8 + header + (uint64_t)json_integer_value(json_object_get(t, "offset")));
        if (fseek(f, at, SEEK_SET) != 0 || fread(bytes, 1, nbytes, f) != nbytes) {
            free(bytes);
            bytes = NULL;
        }
    }
    if (f)
        fclose(f);
    return bytes;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s DEVICE_IMAGE TENSOR\n", argv[0]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/ckpt-manifest.json", argv[1]);
    json_t *manifest = json_load_file(path, 0, NULL), *t = manifest ? find_tensor(manifest, argv[2]) : NULL;
    const json_t *device = json_object_get(t, "device");
    if (!device) {
        fprintf(stderr, "%s: no FRACTAL_NZ tensor %s\n", path, argv[2]);
        return 3;
    }
    int64_t view[MAX_DIMS], strides[MAX_DIMS], storage[MAX_DIMS];
    size_t view_rank = dims_of(json_object_get(device, "view_shape"), view);
    size_t storage_rank = dims_of(json_object_get(device, "storage_shape"), storage);
    for (size_t d = view_rank, stride = 1; d-- > 0; stride *= (size_t)view[d])
        strides[d] = (int64_t)stride;   /* the view is row-major: the tiles are its storage */
    size_t nbytes = (size_t)json_integer_value(json_object_get(device, "storage_nbytes"));
    void *host = read_tiles(argv[1], t, nbytes), *dev = NULL;
    if (!host || aclInit(NULL) != ACL_SUCCESS || aclrtSetDevice(0) != ACL_SUCCESS ||
        aclrtMalloc(&dev, nbytes, ACL_MEM_MALLOC_HUGE_FIRST) != ACL_SUCCESS ||
        aclrtMemcpy(dev, nbytes, host, nbytes, ACL_MEMCPY_HOST_TO_DEVICE) != ACL_SUCCESS) {
        fprintf(stderr, "%s: cannot copy %s to the device\n", argv[1], argv[2]);
        return 4;
    }
    aclDataType dtype = (aclDataType)json_integer_value(json_object_get(device, "acl_dtype"));
    aclFormat format = (aclFormat)json_integer_value(json_object_get(device, "acl_format"));
    aclTensor *tensor = aclCreateTensor(view, view_rank, dtype, strides, 0, format, storage, storage_rank, dev);
    printf("%s: %s FRACTAL_NZ, view rank %zu, storage rank %zu, C0 %lld, %zu bytes on the device\n", argv[2],
           json_string_value(json_object_get(device, "acl_dtype_name")), view_rank, storage_rank,
           (long long)json_integer_value(json_object_get(device, "c0")), nbytes);
    /* ... hand `tensor` to an aclnn matmul (transposeX2 per device.orientation) ... */
    aclDestroyTensor(tensor);
    aclrtFree(dev);
    free(host);
    json_decref(manifest);
    aclrtResetDevice(0);
    aclFinalize();
    return 0;
}
