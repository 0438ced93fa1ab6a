/*
 * test_pickle.c: the pickle machine on pickles built byte by byte here:
 * each opcode family, and each way a hostile pickle tries to exhaust or
 * trick a reader.
 */
#include "helpers.h"

#include "formats/torch/pickle.h"
#include "formats/torch/torch_state.h"
#include "libckpt/catalog/source.h"

#include <stdlib.h>
#include <string.h>

static int load(const char *bytes, size_t n, struct pickle *p, ckpt_error *err)
{
    return pickle_load(p, (const uint8_t *)bytes, n, "test.pkl", 1 << 24, err);
}

#define LOAD(lit, p, err) load(lit, sizeof lit - 1, p, err)

START_TEST(opcodes_build_values)
{
    struct pickle p;
    ckpt_error err;
    /* protocol 2: {'a': [1, -2, True, None, 1.5], 'b': (b'xy',)} with memo reuse */
    const char v2[] = "\x80\x02}q\x00(X\x01\x00\x00\x00" "aq\x01]q\x02(K\x01J\xfe\xff\xff\xff\x88N"
                      "G\x3f\xf8\x00\x00\x00\x00\x00\x00" "eX\x01\x00\x00\x00" "bC\x02xy\x85h\x01\x86u.";
    ck_assert_int_eq(LOAD(v2, &p, &err), CKPT_OK);
    ck_assert_int_eq(p.root->kind, PK_DICT);
    ck_assert_uint_eq(p.root->count, 4);
    const struct pk_value *list = p.root->items[1];
    int64_t i;
    ck_assert(pk_int(list->items[0], &i) && i == 1);
    ck_assert(pk_int(list->items[1], &i) && i == -2);
    ck_assert_int_eq(list->items[2]->kind, PK_BOOL);
    ck_assert_int_eq(list->items[3]->kind, PK_NONE);
    ck_assert_double_eq(list->items[4]->f, 1.5);
    const struct pk_value *tuple = p.root->items[3];
    ck_assert_int_eq(tuple->kind, PK_TUPLE);
    ck_assert_str_eq(pk_str(tuple->items[1]), "a");   /* the memo gave back the same key */
    pickle_free(&p);
    /* protocol 0 text forms: (I42\nL-7L\nF0.25\nS'hi'\nVnamé\ntp0\n. */
    const char v0[] = "(I42\nL-7L\nF0.25\nS'h\\x69'\nI01\ntp0\n.";
    ck_assert_int_eq(LOAD(v0, &p, &err), CKPT_OK);
    ck_assert(pk_int(p.root->items[0], &i) && i == 42);
    ck_assert(pk_int(p.root->items[1], &i) && i == -7);
    ck_assert_double_eq(p.root->items[2]->f, 0.25);
    ck_assert_mem_eq(p.root->items[3]->s, "hi", 2);
    ck_assert_int_eq(p.root->items[4]->kind, PK_BOOL);
    pickle_free(&p);
    /* empty containers from marks (fuzzer finds: slices of an empty stack, empty APPENDS) */
    ck_assert_int_eq(LOAD("(d.", &p, &err), CKPT_OK);
    ck_assert_int_eq(p.root->kind, PK_DICT);
    pickle_free(&p);
    ck_assert_int_eq(LOAD("](e.", &p, &err), CKPT_OK);
    ck_assert_uint_eq(p.root->count, 0);
    pickle_free(&p);
    /* LONG1 negative and 10-byte; protocol 4 framing and MEMOIZE */
    const char v4[] = "\x80\x04\x95\x0e\x00\x00\x00\x00\x00\x00\x00\x8a\x02\x00\xff\x94\x8c\x01z\x94h\x00\x87\x94.";
    ck_assert_int_eq(LOAD(v4, &p, &err), CKPT_OK);
    ck_assert(pk_int(p.root->items[0], &i) && i == -256);
    ck_assert(pk_int(p.root->items[2], &i) && i == -256);
    pickle_free(&p);
}
END_TEST

START_TEST(allowed_calls_are_simulated)
{
    struct pickle p;
    ckpt_error err;
    /* OrderedDict() becomes a dict that SETITEM fills; _codecs.encode('\xff', 'latin1') bytes */
    const char od[] = "\x80\x02" "ccollections\nOrderedDict\n)RX\x01\x00\x00\x00k"
                      "c_codecs\nencode\nX\x02\x00\x00\x00\xc3\xbfX\x06\x00\x00\x00latin1\x86Rs.";
    ck_assert_int_eq(LOAD(od, &p, &err), CKPT_OK);
    ck_assert_int_eq(p.root->kind, PK_DICT);
    ck_assert_int_eq(p.root->items[1]->kind, PK_BYTES);
    ck_assert_uint_eq(p.root->items[1]->len, 1);
    ck_assert_uint_eq((uint8_t)p.root->items[1]->s[0], 0xFF);
    pickle_free(&p);
    /* argparse.Namespace() with BUILD state is kept for the reader */
    const char ns[] = "\x80\x02" "cargparse\nNamespace\n)\x81}X\x02\x00\x00\x00lrG\x3f\x50\x62\x4d\xd2\xf1\xa9\xfcsb.";
    ck_assert_int_eq(LOAD(ns, &p, &err), CKPT_OK);
    ck_assert(pk_is_call(p.root, "argparse", "Namespace"));
    ck_assert_int_eq(p.root->state->kind, PK_DICT);
    pickle_free(&p);
}
END_TEST

static void expect_refused(const char *bytes, size_t n, int code, const char *needle)
{
    struct pickle p;
    ckpt_error err;
    int rc = load(bytes, n, &p, &err);
    ck_assert_msg(rc == code, "status %d (%s), want %d", rc, rc ? err.message : "ok", code);
    ck_assert_msg(strstr(err.message, needle) != NULL, "'%s' lacks '%s'", err.message, needle);
    ck_assert_msg(strstr(err.message, "test.pkl") != NULL, "'%s' does not name the input", err.message);
}

#define REFUSED(lit, code, needle) expect_refused(lit, sizeof lit - 1, code, needle)

START_TEST(calls_outside_the_allow_list_are_refused)
{
    REFUSED("cos\nsystem\n(S'touch /tmp/pwned'\ntR.", CKPT_ERR_FORMAT, "refusing to call os.system");
    REFUSED("\x80\x04\x8c\x08" "builtins\x8c\x04" "eval\x93\x8c\x01x\x85R.", CKPT_ERR_FORMAT, "refusing to call builtins.eval");
    REFUSED("(cos\nsystem\nS'id'\no.", CKPT_ERR_FORMAT, "refusing to call os.system");
    REFUSED("(S'id'\nios\nsystem\n.", CKPT_ERR_FORMAT, "refusing to call os.system");
    /* BUILD straight on a class (a __setstate__ gadget) */
    REFUSED("\x80\x02" "csubprocess\nPopen\n}b.", CKPT_ERR_FORMAT, "refusing to call subprocess.Popen");
    /* calling the result of a call */
    REFUSED("\x80\x02" "ctorch\nSize\n)R)R.", CKPT_ERR_FORMAT, "calls something that is not a global");
    /* the extension registry names callables by number */
    REFUSED("\x80\x02\x82\x01)R.", CKPT_ERR_FORMAT, "extension codes");
    /* a global alone is only a name: no refusal at load time */
    struct pickle p;
    ck_assert_int_eq(LOAD("cos\nsystem\n.", &p, NULL), CKPT_OK);
    ck_assert(pk_is_global(p.root, "os", "system"));
    pickle_free(&p);
}
END_TEST

/* Every protocol 3-5 opcode DCP metadata may use, in one pickle built here. */
START_TEST(protocol_5_opcodes)
{
    static const char body[] =
        "(\x8c\x01" "a"                                   /* MARK, SHORT_BINUNICODE 'a' */
        "\x8d\x02\x00\x00\x00\x00\x00\x00\x00" "bc"   /* BINUNICODE8 'bc' */
        "C\x02xy"                                          /* SHORT_BINBYTES */
        "B\x01\x00\x00\x00z"                               /* BINBYTES */
        "\x8e\x01\x00\x00\x00\x00\x00\x00\x00w"         /* BINBYTES8 */
        "\x96\x02\x00\x00\x00\x00\x00\x00\x00uv"        /* BYTEARRAY8 */
        "\x8f(K\x01K\x02\x90"                              /* EMPTY_SET, ADDITEMS {1, 2} */
        "(K\x03\x91"                                       /* FROZENSET {3} */
        "\x8c\x0b" "collections\x94\x8c\x0b" "OrderedDict\x93)}\x92" /* STACK_GLOBAL, NEWOBJ_EX */
        "h\x00t.";                                         /* the memoized 'collections', TUPLE */
    char buf[sizeof body + 11] = "\x80\x05\x95";           /* PROTO 5, FRAME over the rest */
    uint64_t n = sizeof body - 1;
    for (int k = 0; k < 8; k++)
        buf[3 + k] = (char)(n >> (8 * k));
    memcpy(buf + 11, body, sizeof body - 1);
    struct pickle p;
    ckpt_error err;
    ck_assert_int_eq(load(buf, sizeof buf - 1, &p, &err), CKPT_OK);
    const struct pk_value *r = p.root;
    ck_assert_int_eq(r->kind, PK_TUPLE);
    ck_assert_uint_eq(r->count, 10);
    ck_assert_str_eq(pk_str(r->items[0]), "a");
    ck_assert_str_eq(pk_str(r->items[1]), "bc");
    static const char *const bytes[] = {"xy", "z", "w", "uv"};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(r->items[2 + i]->kind, PK_BYTES);
        ck_assert_uint_eq(r->items[2 + i]->len, strlen(bytes[i]));
        ck_assert_mem_eq(r->items[2 + i]->s, bytes[i], strlen(bytes[i]));
    }
    int64_t v;
    ck_assert(r->items[6]->kind == PK_SET && r->items[6]->count == 2 && pk_int(r->items[6]->items[1], &v) && v == 2);
    ck_assert(r->items[7]->kind == PK_SET && r->items[7]->count == 1 && pk_int(r->items[7]->items[0], &v) && v == 3);
    ck_assert_int_eq(r->items[8]->kind, PK_DICT);
    ck_assert_str_eq(pk_str(r->items[9]), "collections");
    pickle_free(&p);
}
END_TEST

/*
 * What DCP metadata needs beyond dataclasses: Python >= 3.11 pickles an enum
 * member as getattr(Class, 'NAME') (allowed only in that form, on an allowed
 * class), and StorageMeta holds a pathlib path.
 */
START_TEST(dcp_metadata_globals)
{
    struct pickle p;
    const char member[] = "\x80\x04\x8c\x08" "builtins\x8c\x07" "getattr\x93"
                          "\x8c\x25" "torch.distributed.checkpoint.metadata\x8c\x14" "_MEM_FORMAT_ENCODING\x93"
                          "\x8c\x17" "TORCH_CONTIGUOUS_FORMAT\x86R.";
    ck_assert_int_eq(LOAD(member, &p, NULL), CKPT_OK);
    ck_assert(pk_is_call(p.root, "builtins", "getattr"));
    pickle_free(&p);
    REFUSED("\x80\x04\x8c\x08" "builtins\x8c\x07" "getattr\x93\x8c\x02" "os\x8c\x06" "system\x93"
            "\x8c\x06" "system\x86R.",
            CKPT_ERR_FORMAT, "refusing to call builtins.getattr");
    REFUSED("\x80\x04\x8c\x08" "builtins\x8c\x07" "getattr\x93" "ctorch\nSize\nK\x01\x86R.", CKPT_ERR_FORMAT,
            "refusing to call builtins.getattr");
    /* DCP's StorageMeta.checkpoint_id: a path, under Python 3.13's module name too; nothing near it */
    ck_assert_int_eq(LOAD("\x80\x02" "cpathlib._local\nPosixPath\nX\x01\x00\x00\x00/\x85R.", &p, NULL), CKPT_OK);
    ck_assert(pk_is_call(p.root, "pathlib._local", "PosixPath"));
    pickle_free(&p);
    REFUSED("\x80\x02" "cpathlib\nPath\nX\x01\x00\x00\x00/\x85R.", CKPT_ERR_FORMAT, "refusing to call pathlib.Path");
}
END_TEST

/* DeepSpeed's pickled objects are data: recorded, never called; near misses still refused. */
START_TEST(deepspeed_objects)
{
    struct pickle p;
    ckpt_error err;
    /* getattr(ZeroStageEnum, 'gradients'): Python 3.11+ pickles an enum member by name */
    const char member[] = "\x80\x02" "c__builtin__\ngetattr\ncdeepspeed.runtime.zero.config\nZeroStageEnum\n"
                          "X\x09\x00\x00\x00gradients\x86R.";
    ck_assert_int_eq(LOAD(member, &p, &err), CKPT_OK);
    ck_assert(pk_is_call(p.root, "__builtin__", "getattr"));
    ck_assert(pk_is_global(p.root->args->items[0], "deepspeed.runtime.zero.config", "ZeroStageEnum"));
    pickle_free(&p);
    /* ZeroStageEnum(3), and a loss scaler object with its attributes */
    ck_assert_int_eq(LOAD("\x80\x02" "cdeepspeed.runtime.zero.config\nZeroStageEnum\nK\x03\x85R.", &p, &err), CKPT_OK);
    ck_assert(pk_is_call(p.root, "deepspeed.runtime.zero.config", "ZeroStageEnum"));
    pickle_free(&p);
    const char scaler[] = "\x80\x02" "cdeepspeed.runtime.fp16.loss_scaler\nDynamicLossScaler\n)\x81}"
                          "X\x09\x00\x00\x00" "cur_scaleG@\xf0\x00\x00\x00\x00\x00\x00sb.";
    ck_assert_int_eq(LOAD(scaler, &p, &err), CKPT_OK);
    ck_assert(pk_is_call(p.root, "deepspeed.runtime.fp16.loss_scaler", "DynamicLossScaler"));
    ck_assert_int_eq(p.root->state->kind, PK_DICT);
    pickle_free(&p);
    /* a member is named by a string; other DeepSpeed names stay refused */
    REFUSED("\x80\x02" "c__builtin__\ngetattr\ncdeepspeed.runtime.zero.config\nZeroStageEnum\nK\x01\x86R.",
            CKPT_ERR_FORMAT, "refusing to call __builtin__.getattr");
    REFUSED("\x80\x02" "cdeepspeed.runtime.zero.config\nZeroStageEnumX\nK\x03\x85R.", CKPT_ERR_FORMAT,
            "refusing to call deepspeed.runtime.zero.config.ZeroStageEnumX");
    REFUSED("\x80\x02" "cdeepspeed.runtime.engine\nDeepSpeedEngine\n)\x81.", CKPT_ERR_FORMAT,
            "refusing to call deepspeed.runtime.engine.DeepSpeedEngine");
}
END_TEST

/* Megatron args: enum members both ways Python pickles them; other megatron names stay refused. */
START_TEST(megatron_enums)
{
    struct pickle p;
    ckpt_error err;
    const char by_name[] = "\x80\x02" "c__builtin__\ngetattr\ncmegatron.core.transformer.enums\nAttnBackend\n"
                           "X\x04\x00\x00\x00" "auto\x86R.";
    ck_assert_int_eq(LOAD(by_name, &p, &err), CKPT_OK);
    ck_assert(pk_is_global(p.root->args->items[0], "megatron.core.transformer.enums", "AttnBackend"));
    pickle_free(&p);
    ck_assert_int_eq(LOAD("\x80\x02" "cmegatron.core.enums\nModelType\nK\x01\x85R.", &p, &err), CKPT_OK);
    ck_assert(pk_is_call(p.root, "megatron.core.enums", "ModelType"));
    pickle_free(&p);
    REFUSED("\x80\x02" "cmegatron.core.enums\nModelTypes\nK\x01\x85R.", CKPT_ERR_FORMAT,
            "refusing to call megatron.core.enums.ModelTypes");
    REFUSED("\x80\x02" "cmegatron.training.arguments\nparse_args\n)R.", CKPT_ERR_FORMAT,
            "refusing to call megatron.training.arguments.parse_args");
}
END_TEST

START_TEST(malformed_pickles_are_refused)
{
    REFUSED("\x80\x02]q\x00", CKPT_ERR_FORMAT, "before its STOP");
    REFUSED("\x80\x02h\x05.", CKPT_ERR_FORMAT, "never stored");
    REFUSED("\x80\x02" "a.", CKPT_ERR_FORMAT, "too few values");
    REFUSED("\x80\x02K\x01K\x02.", CKPT_ERR_FORMAT, "2 values on its stack");
    REFUSED("\x80\x02\xff.", CKPT_ERR_FORMAT, "unknown pickle opcode 0xff");
    REFUSED("\x80\x02X\xff\xff\xff\x7f", CKPT_ERR_FORMAT, "before its STOP");
    REFUSED("\x80\x02X\x02\x00\x00\x00\xc3\x28.", CKPT_ERR_FORMAT, "not valid UTF-8");
    REFUSED("\x80\x02K\x01K\x02s.", CKPT_ERR_FORMAT, "");
    REFUSED("\x80\x06.", CKPT_ERR_UNSUPPORTED, "protocol 6");
    REFUSED("\x80\x02Nr\xff\xff\xff\xff.", CKPT_ERR_LIMIT, "memo key");
    /* a SETITEM whose key lies below the last MARK: once made a negative slice and looped forever */
    REFUSED("\x80\x02}K\x00(K\x01st.", CKPT_ERR_FORMAT, "SETITEM");
}
END_TEST

START_TEST(resource_limits)
{
    /* 70,000 MARKs: nesting past the limit */
    size_t n = 70000;
    char *deep = malloc(n + 4);
    memset(deep, '(', n);
    memcpy(deep + n, "N.", 2);
    expect_refused(deep, n + 2, CKPT_ERR_LIMIT, "nests deeper");
    free(deep);
    /* a string of 20 MB against a 16 MiB memory limit */
    size_t big = 20u << 20;
    char *s = malloc(big + 16);
    memcpy(s, "\x80\x02X", 3);
    s[3] = (char)(big & 0xFF), s[4] = (char)(big >> 8 & 0xFF), s[5] = (char)(big >> 16 & 0xFF), s[6] = (char)(big >> 24);
    memset(s + 7, 'a', big);
    memcpy(s + 7 + big, ".", 1);
    expect_refused(s, big + 8, CKPT_ERR_LIMIT, "max_pickle_bytes");
    free(s);
    /* one PUT of memo key 3,145,728 needs a 32 MiB memo: over the 16 MiB limit (found by fuzz_pickle) */
    expect_refused("\x80\x02Nr\x00\x00\x30\x00.", 10, CKPT_ERR_LIMIT, "max_pickle_bytes");
    struct pickle p;
    ck_assert_int_eq(LOAD("\x80\x02Nr\x00\x10\x00\x00.", &p, NULL), CKPT_OK);   /* key 4096: 64 KiB */
    pickle_free(&p);
}
END_TEST

/* A list that holds itself, and 2^40 paths built from 40 memoized doublings. */
START_TEST(walker_survives_cycles_and_bombs)
{
    struct ckpt_source *src = calloc(1, sizeof *src);
    ckpt_limits_default(&src->limits);
    struct pickle p;
    ckpt_error err;
    ck_assert_int_eq(LOAD("\x80\x02]q\x00h\x00" "a.", &p, &err), CKPT_OK);
    ck_assert_int_eq(torch_state_declare(src, p.root, "cycle.pkl", NULL, NULL, &err), CKPT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "contains itself"));
    pickle_free(&p);

    char bomb[512];
    size_t k = 0;
    memcpy(bomb, "\x80\x02N", 3);
    k = 3;
    for (int level = 0; level < 40; level++) {   /* x = (x, x) */
        bomb[k++] = 'q';
        bomb[k++] = (char)level;
        bomb[k++] = 'h';
        bomb[k++] = (char)level;
        bomb[k++] = '\x86';
    }
    bomb[k++] = '.';
    ck_assert_int_eq(load(bomb, k, &p, &err), CKPT_OK);
    ck_assert_int_eq(torch_state_declare(src, p.root, "bomb.pkl", NULL, NULL, &err), CKPT_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(err.message, "pickle bomb"));
    pickle_free(&p);
    ckpt_source_free(src);
}
END_TEST

static Suite *pickle_suite(void)
{
    Suite *s = suite_create("pickle");
    TCase *tc = tcase_create("machine");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, opcodes_build_values);
    tcase_add_test(tc, protocol_5_opcodes);
    tcase_add_test(tc, dcp_metadata_globals);
    tcase_add_test(tc, allowed_calls_are_simulated);
    tcase_add_test(tc, calls_outside_the_allow_list_are_refused);
    tcase_add_test(tc, deepspeed_objects);
    tcase_add_test(tc, megatron_enums);
    tcase_add_test(tc, malformed_pickles_are_refused);
    tcase_add_test(tc, resource_limits);
    tcase_add_test(tc, walker_survives_cycles_and_bombs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(pickle_suite());
}
