/* SPDX-License-Identifier: Apache-2.0 */
/*
 * p11shim: a PKCS#11 v2.40 module for tests. It forwards every call to a real module (normally
 * SoftHSM) and injects the faults of real tokens on demand. It is configured only through the
 * environment, read once per process at the first C_GetFunctionList or C_Initialize. An empty
 * variable counts as unset. An unknown name in any value, or an unknown P11SHIM_* variable, makes
 * C_Initialize return CKR_ARGUMENTS_BAD after one line on stderr, so a typo cannot let a test pass.
 * Names are matched case-insensitively.
 *
 *   P11SHIM_MODULE      path of the real module (required, else C_Initialize: CKR_GENERAL_ERROR)
 *   P11SHIM_FAIL_FUNC   function to fail, e.g. C_Sign; a failed call never reaches the real module
 *   P11SHIM_FAIL_RV     what it returns: a CKR_ name or 0x hex (default CKR_DEVICE_ERROR)
 *   P11SHIM_FAIL_AFTER  N: the first N calls of that function pass through (default 0)
 *   P11SHIM_FAIL_COUNT  M: then M calls fail and later ones pass again (default 0: fail forever)
 *   P11SHIM_DELAY_MS    milliseconds to sleep in each call before forwarding (slow card)
 *   P11SHIM_DELAY_FUNC  only delay this one function
 *   P11SHIM_DELAY_SERIAL=1  delayed calls take turns under one module-wide lock, as a real
 *                       card does one operation at a time
 *   P11SHIM_HIDE_MECHS  comma list of CKM_ names or 0x hex; "pss" means all RSA-PSS mechanisms.
 *                       Left out of C_GetMechanismList; C_GetMechanismInfo and every function
 *                       taking a CK_MECHANISM return CKR_MECHANISM_INVALID for them.
 *   P11SHIM_TOKEN_FLAGS comma list of CKF_ names or 0x hex OR'ed into C_GetTokenInfo's flags
 *   P11SHIM_SLOT_FLAGS  the same for C_GetSlotInfo's flags
 *   P11SHIM_TOKEN_MANUFACTURER, P11SHIM_TOKEN_MODEL, P11SHIM_TOKEN_SERIAL, P11SHIM_TOKEN_LABEL
 *                       replace those CK_TOKEN_INFO fields (blank-padded, truncated to fit)
 *   P11SHIM_ATTR_OVERRIDE comma list of CKA_NAME=0|1: the CK_BBOOL that C_GetAttributeValue
 *                       reports for private keys, where the real module did return the attribute
 *   P11SHIM_LOG         file getting one line "NAME 0xRV" (rv printed as 0x%08lx) per call, once
 *                       the call has returned, e.g. "C_Login 0x000000a0"; count them with
 *                       grep -c '^C_Login '. The shim's own calls to the module are not logged.
 *   P11SHIM_COUNT       file getting one line, the function's name, per signature the module
 *                       made: C_Sign, C_SignFinal or C_SignRecover returning CKR_OK with a
 *                       signature buffer (a call without one asks for the length and signs
 *                       nothing). No other call writes to it, so counting with wc -l costs
 *                       the other calls nothing, where P11SHIM_LOG writes a line for each.
 *
 * The failure counter lives as long as the process, across C_Finalize, so a caller that
 * re-initialises to recover still walks through the configured error window. An injected failure
 * of C_Sign, C_EncryptUpdate and the like ends the real module's operation, as a token would.
 */

#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

extern char **environ;

/* Every member of CK_FUNCTION_LIST; drives the function table, the names and the log. */
#define SHIM_FUNCTIONS(X)                                                                          \
    X(C_Initialize)                                                                                \
    X(C_Finalize)                                                                                  \
    X(C_GetInfo)                                                                                   \
    X(C_GetFunctionList)                                                                           \
    X(C_GetSlotList)                                                                               \
    X(C_GetSlotInfo)                                                                               \
    X(C_GetTokenInfo)                                                                              \
    X(C_GetMechanismList)                                                                          \
    X(C_GetMechanismInfo)                                                                          \
    X(C_InitToken)                                                                                 \
    X(C_InitPIN)                                                                                   \
    X(C_SetPIN)                                                                                    \
    X(C_OpenSession)                                                                               \
    X(C_CloseSession)                                                                              \
    X(C_CloseAllSessions)                                                                          \
    X(C_GetSessionInfo)                                                                            \
    X(C_GetOperationState)                                                                         \
    X(C_SetOperationState)                                                                         \
    X(C_Login)                                                                                     \
    X(C_Logout)                                                                                    \
    X(C_CreateObject)                                                                              \
    X(C_CopyObject)                                                                                \
    X(C_DestroyObject)                                                                             \
    X(C_GetObjectSize)                                                                             \
    X(C_GetAttributeValue)                                                                         \
    X(C_SetAttributeValue)                                                                         \
    X(C_FindObjectsInit)                                                                           \
    X(C_FindObjects)                                                                               \
    X(C_FindObjectsFinal)                                                                          \
    X(C_EncryptInit)                                                                               \
    X(C_Encrypt)                                                                                   \
    X(C_EncryptUpdate)                                                                             \
    X(C_EncryptFinal)                                                                              \
    X(C_DecryptInit)                                                                               \
    X(C_Decrypt)                                                                                   \
    X(C_DecryptUpdate)                                                                             \
    X(C_DecryptFinal)                                                                              \
    X(C_DigestInit)                                                                                \
    X(C_Digest)                                                                                    \
    X(C_DigestUpdate)                                                                              \
    X(C_DigestKey)                                                                                 \
    X(C_DigestFinal)                                                                               \
    X(C_SignInit)                                                                                  \
    X(C_Sign)                                                                                      \
    X(C_SignUpdate)                                                                                \
    X(C_SignFinal)                                                                                 \
    X(C_SignRecoverInit)                                                                           \
    X(C_SignRecover)                                                                               \
    X(C_VerifyInit)                                                                                \
    X(C_Verify)                                                                                    \
    X(C_VerifyUpdate)                                                                              \
    X(C_VerifyFinal)                                                                               \
    X(C_VerifyRecoverInit)                                                                         \
    X(C_VerifyRecover)                                                                             \
    X(C_DigestEncryptUpdate)                                                                       \
    X(C_DecryptDigestUpdate)                                                                       \
    X(C_SignEncryptUpdate)                                                                         \
    X(C_DecryptVerifyUpdate)                                                                       \
    X(C_GenerateKey)                                                                               \
    X(C_GenerateKeyPair)                                                                           \
    X(C_WrapKey)                                                                                   \
    X(C_UnwrapKey)                                                                                 \
    X(C_DeriveKey)                                                                                 \
    X(C_SeedRandom)                                                                                \
    X(C_GenerateRandom)                                                                            \
    X(C_GetFunctionStatus)                                                                         \
    X(C_CancelFunction)                                                                            \
    X(C_WaitForSlotEvent)

enum shim_func {
    FN_NONE = -1,
#define X(name) FN_##name,
    SHIM_FUNCTIONS(X)
#undef X
};

static const char *const func_names[] = {
#define X(name) #name,
    SHIM_FUNCTIONS(X)
#undef X
};

#define FN_COUNT (sizeof(func_names) / sizeof(func_names[0]))

/* Together with the designated initialisers below, this proves no member is left NULL. */
_Static_assert(sizeof(CK_FUNCTION_LIST) ==
                   offsetof(CK_FUNCTION_LIST, C_Initialize) + FN_COUNT * sizeof(CK_C_Initialize),
               "SHIM_FUNCTIONS must name every member of CK_FUNCTION_LIST");

struct named {
    const char *name;
    unsigned long value;
};

/* clang-format would split the braces of these two macros over several lines. */
/* clang-format off */
#define NAMED(sym) {#sym, sym}
/* clang-format on */

static const struct named rv_names[] = {
    NAMED(CKR_OK),
    NAMED(CKR_CANCEL),
    NAMED(CKR_HOST_MEMORY),
    NAMED(CKR_SLOT_ID_INVALID),
    NAMED(CKR_GENERAL_ERROR),
    NAMED(CKR_FUNCTION_FAILED),
    NAMED(CKR_ARGUMENTS_BAD),
    NAMED(CKR_CANT_LOCK),
    NAMED(CKR_ATTRIBUTE_SENSITIVE),
    NAMED(CKR_ATTRIBUTE_TYPE_INVALID),
    NAMED(CKR_ATTRIBUTE_VALUE_INVALID),
    NAMED(CKR_ACTION_PROHIBITED),
    NAMED(CKR_DATA_INVALID),
    NAMED(CKR_DATA_LEN_RANGE),
    NAMED(CKR_DEVICE_ERROR),
    NAMED(CKR_DEVICE_MEMORY),
    NAMED(CKR_DEVICE_REMOVED),
    NAMED(CKR_FUNCTION_CANCELED),
    NAMED(CKR_FUNCTION_NOT_SUPPORTED),
    NAMED(CKR_KEY_HANDLE_INVALID),
    NAMED(CKR_KEY_TYPE_INCONSISTENT),
    NAMED(CKR_KEY_FUNCTION_NOT_PERMITTED),
    NAMED(CKR_MECHANISM_INVALID),
    NAMED(CKR_MECHANISM_PARAM_INVALID),
    NAMED(CKR_OBJECT_HANDLE_INVALID),
    NAMED(CKR_OPERATION_ACTIVE),
    NAMED(CKR_OPERATION_NOT_INITIALIZED),
    NAMED(CKR_PIN_INCORRECT),
    NAMED(CKR_PIN_INVALID),
    NAMED(CKR_PIN_LEN_RANGE),
    NAMED(CKR_PIN_EXPIRED),
    NAMED(CKR_PIN_LOCKED),
    NAMED(CKR_SESSION_CLOSED),
    NAMED(CKR_SESSION_COUNT),
    NAMED(CKR_SESSION_HANDLE_INVALID),
    NAMED(CKR_SESSION_READ_ONLY),
    NAMED(CKR_SIGNATURE_INVALID),
    NAMED(CKR_SIGNATURE_LEN_RANGE),
    NAMED(CKR_TEMPLATE_INCOMPLETE),
    NAMED(CKR_TEMPLATE_INCONSISTENT),
    NAMED(CKR_TOKEN_NOT_PRESENT),
    NAMED(CKR_TOKEN_NOT_RECOGNIZED),
    NAMED(CKR_TOKEN_WRITE_PROTECTED),
    NAMED(CKR_USER_ALREADY_LOGGED_IN),
    NAMED(CKR_USER_NOT_LOGGED_IN),
    NAMED(CKR_USER_PIN_NOT_INITIALIZED),
    NAMED(CKR_USER_TYPE_INVALID),
    NAMED(CKR_RANDOM_NO_RNG),
    NAMED(CKR_BUFFER_TOO_SMALL),
    NAMED(CKR_CRYPTOKI_NOT_INITIALIZED),
    NAMED(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    NAMED(CKR_FUNCTION_REJECTED),
    {NULL, 0},
};

static const struct named mech_names[] = {
    NAMED(CKM_RSA_PKCS_KEY_PAIR_GEN),
    NAMED(CKM_RSA_PKCS),
    NAMED(CKM_RSA_X_509),
    NAMED(CKM_RSA_PKCS_OAEP),
    NAMED(CKM_RSA_PKCS_PSS),
    NAMED(CKM_SHA1_RSA_PKCS),
    NAMED(CKM_SHA224_RSA_PKCS),
    NAMED(CKM_SHA256_RSA_PKCS),
    NAMED(CKM_SHA384_RSA_PKCS),
    NAMED(CKM_SHA512_RSA_PKCS),
    NAMED(CKM_SHA1_RSA_PKCS_PSS),
    NAMED(CKM_SHA224_RSA_PKCS_PSS),
    NAMED(CKM_SHA256_RSA_PKCS_PSS),
    NAMED(CKM_SHA384_RSA_PKCS_PSS),
    NAMED(CKM_SHA512_RSA_PKCS_PSS),
    NAMED(CKM_EC_KEY_PAIR_GEN),
    NAMED(CKM_ECDSA),
    NAMED(CKM_ECDSA_SHA1),
    NAMED(CKM_ECDSA_SHA224),
    NAMED(CKM_ECDSA_SHA256),
    NAMED(CKM_ECDSA_SHA384),
    NAMED(CKM_ECDSA_SHA512),
    NAMED(CKM_ECDH1_DERIVE),
    NAMED(CKM_EC_EDWARDS_KEY_PAIR_GEN),
    NAMED(CKM_EDDSA),
    NAMED(CKM_SHA_1),
    NAMED(CKM_SHA256),
    NAMED(CKM_SHA384),
    NAMED(CKM_SHA512),
    NAMED(CKM_GENERIC_SECRET_KEY_GEN),
    NAMED(CKM_AES_KEY_GEN),
    {NULL, 0},
};

/* What a token without PSS support lacks, so tests can force a PKCS#1 v1.5 fallback. */
static const CK_MECHANISM_TYPE pss_mechs[] = {
    CKM_RSA_PKCS_PSS,        CKM_SHA1_RSA_PKCS_PSS,   CKM_SHA224_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS,
};

static const struct named token_flag_names[] = {
    NAMED(CKF_RNG),
    NAMED(CKF_WRITE_PROTECTED),
    NAMED(CKF_LOGIN_REQUIRED),
    NAMED(CKF_USER_PIN_INITIALIZED),
    NAMED(CKF_RESTORE_KEY_NOT_NEEDED),
    NAMED(CKF_CLOCK_ON_TOKEN),
    NAMED(CKF_PROTECTED_AUTHENTICATION_PATH),
    NAMED(CKF_DUAL_CRYPTO_OPERATIONS),
    NAMED(CKF_TOKEN_INITIALIZED),
    NAMED(CKF_SECONDARY_AUTHENTICATION),
    NAMED(CKF_USER_PIN_COUNT_LOW),
    NAMED(CKF_USER_PIN_FINAL_TRY),
    NAMED(CKF_USER_PIN_LOCKED),
    NAMED(CKF_USER_PIN_TO_BE_CHANGED),
    NAMED(CKF_SO_PIN_COUNT_LOW),
    NAMED(CKF_SO_PIN_FINAL_TRY),
    NAMED(CKF_SO_PIN_LOCKED),
    NAMED(CKF_SO_PIN_TO_BE_CHANGED),
    {NULL, 0},
};

static const struct named slot_flag_names[] = {
    NAMED(CKF_TOKEN_PRESENT),
    NAMED(CKF_REMOVABLE_DEVICE),
    NAMED(CKF_HW_SLOT),
    {NULL, 0},
};

/* Only CK_BBOOL attributes: the override writes a single byte. */
static const struct named attr_names[] = {
    NAMED(CKA_TOKEN),
    NAMED(CKA_PRIVATE),
    NAMED(CKA_MODIFIABLE),
    NAMED(CKA_COPYABLE),
    NAMED(CKA_DESTROYABLE),
    NAMED(CKA_SENSITIVE),
    NAMED(CKA_DECRYPT),
    NAMED(CKA_SIGN),
    NAMED(CKA_SIGN_RECOVER),
    NAMED(CKA_UNWRAP),
    NAMED(CKA_DERIVE),
    NAMED(CKA_EXTRACTABLE),
    NAMED(CKA_LOCAL),
    NAMED(CKA_NEVER_EXTRACTABLE),
    NAMED(CKA_ALWAYS_SENSITIVE),
    NAMED(CKA_WRAP_WITH_TRUSTED),
    NAMED(CKA_ALWAYS_AUTHENTICATE),
    {NULL, 0},
};

struct token_text {
    const char *var;
    size_t offset;
    size_t size;
};

/* clang-format off */
#define TOKEN_TEXT(var, field) \
    {var, offsetof(CK_TOKEN_INFO, field), sizeof(((CK_TOKEN_INFO *)NULL)->field)}
/* clang-format on */

static const struct token_text token_texts[] = {
    TOKEN_TEXT("P11SHIM_TOKEN_MANUFACTURER", manufacturerID),
    TOKEN_TEXT("P11SHIM_TOKEN_MODEL", model),
    TOKEN_TEXT("P11SHIM_TOKEN_SERIAL", serialNumber),
    TOKEN_TEXT("P11SHIM_TOKEN_LABEL", label),
};

#define N_TOKEN_TEXTS (sizeof(token_texts) / sizeof(token_texts[0]))
#define MAX_HIDDEN 64
#define MAX_OVERRIDES 32

static const char *const known_vars[] = {
    "P11SHIM_MODULE",
    "P11SHIM_FAIL_FUNC",
    "P11SHIM_FAIL_RV",
    "P11SHIM_FAIL_AFTER",
    "P11SHIM_FAIL_COUNT",
    "P11SHIM_DELAY_MS",
    "P11SHIM_DELAY_FUNC",
    "P11SHIM_DELAY_SERIAL",
    "P11SHIM_HIDE_MECHS",
    "P11SHIM_TOKEN_FLAGS",
    "P11SHIM_SLOT_FLAGS",
    "P11SHIM_ATTR_OVERRIDE",
    "P11SHIM_LOG",
    "P11SHIM_TOKEN_MANUFACTURER",
    "P11SHIM_TOKEN_MODEL",
    "P11SHIM_TOKEN_SERIAL",
    "P11SHIM_TOKEN_LABEL",
    "P11SHIM_COUNT",
    NULL,
};

/* Written once under pthread_once, read-only afterwards, so readers need no lock. */
static struct {
    CK_RV load_rv; /* what C_Initialize returns when the setup is unusable */
    CK_FUNCTION_LIST_PTR real;
    int fail_func;
    CK_RV fail_rv;
    unsigned long fail_after;
    unsigned long fail_count;
    unsigned long delay_ms;
    unsigned long delay_serial;
    int delay_func;
    CK_MECHANISM_TYPE hidden[MAX_HIDDEN];
    size_t n_hidden;
    CK_FLAGS token_flags;
    CK_FLAGS slot_flags;
    char *token_text[N_TOKEN_TEXTS];
    CK_ATTRIBUTE_TYPE override_type[MAX_OVERRIDES];
    CK_BBOOL override_value[MAX_OVERRIDES];
    size_t n_overrides;
    char *log_path;
    char *count_path;
} cfg;

static pthread_once_t cfg_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long fail_calls;

/* ---- configuration ---- */

static const char *env(const char *name)
{
    const char *value = getenv(name);
    return value != NULL && *value != '\0' ? value : NULL;
}

static bool config_error(const char *var, const char *value, const char *why)
{
    fprintf(stderr, "p11shim: %s=%s: %s\n", var, value, why);
    return false;
}

static bool parse_hex(const char *text, unsigned long *out)
{
    if (text[0] != '0' || (text[1] != 'x' && text[1] != 'X') || text[2] == '\0')
        return false;
    char *end;
    errno = 0;
    *out = strtoul(text + 2, &end, 16);
    return errno == 0 && *end == '\0' && text[2] != '-' && text[2] != '+';
}

static bool parse_decimal(const char *text, unsigned long *out)
{
    if (text[0] < '0' || text[0] > '9')
        return false;
    char *end;
    errno = 0;
    *out = strtoul(text, &end, 10);
    return errno == 0 && *end == '\0';
}

static bool lookup(const struct named *table, const char *text, unsigned long *out)
{
    for (; table->name != NULL; table++) {
        if (strcasecmp(table->name, text) == 0) {
            *out = table->value;
            return true;
        }
    }
    return parse_hex(text, out);
}

static int lookup_func(const char *text)
{
    for (size_t i = 0; i < FN_COUNT; i++) {
        if (strcasecmp(func_names[i], text) == 0)
            return (int)i;
    }
    return FN_NONE;
}

static char *trim(char *text)
{
    while (*text == ' ' || *text == '\t')
        text++;
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
        text[--len] = '\0';
    return text;
}

/*
 * Calls item() for each non-empty comma-separated element of the variable. strtok_r is safe here
 * because it works on a private copy and pthread_once already serialises configuration.
 */
static bool for_each_item(const char *var, bool (*item)(const char *var, char *text))
{
    const char *value = env(var);
    if (value == NULL)
        return true;
    char *copy = strdup(value);
    if (copy == NULL)
        return config_error(var, value, "out of memory");
    bool ok = true;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        char *text = trim(tok);
        if (*text != '\0' && !item(var, text))
            ok = false;
    }
    free(copy);
    return ok;
}

static bool hide_mech(const char *var, CK_MECHANISM_TYPE mech)
{
    if (cfg.n_hidden == MAX_HIDDEN)
        return config_error(var, env(var), "too many mechanisms");
    cfg.hidden[cfg.n_hidden++] = mech;
    return true;
}

static bool parse_hidden_mech(const char *var, char *text)
{
    if (strcasecmp(text, "pss") == 0) {
        for (size_t i = 0; i < sizeof(pss_mechs) / sizeof(pss_mechs[0]); i++) {
            if (!hide_mech(var, pss_mechs[i]))
                return false;
        }
        return true;
    }
    unsigned long mech;
    if (!lookup(mech_names, text, &mech))
        return config_error(var, text, "unknown mechanism");
    return hide_mech(var, mech);
}

static bool parse_token_flag(const char *var, char *text)
{
    unsigned long flag;
    if (!lookup(token_flag_names, text, &flag))
        return config_error(var, text, "unknown token flag");
    cfg.token_flags |= flag;
    return true;
}

static bool parse_slot_flag(const char *var, char *text)
{
    unsigned long flag;
    if (!lookup(slot_flag_names, text, &flag))
        return config_error(var, text, "unknown slot flag");
    cfg.slot_flags |= flag;
    return true;
}

static bool parse_override(const char *var, char *text)
{
    char *eq = strchr(text, '=');
    if (eq == NULL)
        return config_error(var, env(var), "expected CKA_NAME=0|1");
    *eq = '\0';
    char *name = trim(text);
    char *value = trim(eq + 1);
    unsigned long type;
    if (!lookup(attr_names, name, &type))
        return config_error(var, env(var), "unknown attribute name");
    if (strcmp(value, "0") != 0 && strcmp(value, "1") != 0)
        return config_error(var, env(var), "attribute values must be 0 or 1");
    if (cfg.n_overrides == MAX_OVERRIDES)
        return config_error(var, env(var), "too many attributes");
    cfg.override_type[cfg.n_overrides] = type;
    cfg.override_value[cfg.n_overrides] = value[0] == '1' ? CK_TRUE : CK_FALSE;
    cfg.n_overrides++;
    return true;
}

static bool parse_func_var(const char *var, int *out)
{
    const char *value = env(var);
    *out = FN_NONE;
    if (value == NULL)
        return true;
    *out = lookup_func(value);
    return *out != FN_NONE || config_error(var, value, "unknown PKCS#11 function");
}

static bool parse_number_var(const char *var, unsigned long *out)
{
    const char *value = env(var);
    *out = 0;
    return value == NULL || parse_decimal(value, out) ||
           config_error(var, value, "expected a decimal number");
}

static bool check_known_vars(void)
{
    static const char prefix[] = "P11SHIM_";
    bool ok = true;
    /* clearenv() leaves environ NULL. */
    for (char **entry = environ; entry != NULL && *entry != NULL; entry++) {
        if (strncmp(*entry, prefix, sizeof(prefix) - 1) != 0)
            continue;
        size_t len = strcspn(*entry, "=");
        bool known = false;
        for (const char *const *var = known_vars; *var != NULL && !known; var++)
            known = strlen(*var) == len && strncmp(*var, *entry, len) == 0;
        if (!known) {
            fprintf(stderr, "p11shim: %s: unknown variable\n", *entry);
            ok = false;
        }
    }
    return ok;
}

/* Creating the file up front makes a bad path fail loudly, and an idle run leave 0 lines. */
static bool parse_log(const char *var, char **path)
{
    const char *value = env(var);
    if (value == NULL)
        return true;
    int fd = open(value, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return config_error(var, value, strerror(errno));
    close(fd);
    *path = strdup(value);
    return *path != NULL || config_error(var, value, "out of memory");
}

static bool parse_config(void)
{
    bool ok = check_known_vars();
    ok = parse_log("P11SHIM_LOG", &cfg.log_path) && ok;
    ok = parse_log("P11SHIM_COUNT", &cfg.count_path) && ok;
    ok = parse_func_var("P11SHIM_FAIL_FUNC", &cfg.fail_func) && ok;
    ok = parse_func_var("P11SHIM_DELAY_FUNC", &cfg.delay_func) && ok;
    ok = parse_number_var("P11SHIM_FAIL_AFTER", &cfg.fail_after) && ok;
    ok = parse_number_var("P11SHIM_FAIL_COUNT", &cfg.fail_count) && ok;
    ok = parse_number_var("P11SHIM_DELAY_MS", &cfg.delay_ms) && ok;
    ok = parse_number_var("P11SHIM_DELAY_SERIAL", &cfg.delay_serial) && ok;

    cfg.fail_rv = CKR_DEVICE_ERROR;
    const char *rv = env("P11SHIM_FAIL_RV");
    if (rv != NULL && !lookup(rv_names, rv, &cfg.fail_rv))
        ok = config_error("P11SHIM_FAIL_RV", rv, "unknown return value");

    ok = for_each_item("P11SHIM_HIDE_MECHS", parse_hidden_mech) && ok;
    ok = for_each_item("P11SHIM_TOKEN_FLAGS", parse_token_flag) && ok;
    ok = for_each_item("P11SHIM_SLOT_FLAGS", parse_slot_flag) && ok;
    ok = for_each_item("P11SHIM_ATTR_OVERRIDE", parse_override) && ok;

    for (size_t i = 0; i < N_TOKEN_TEXTS; i++) {
        const char *value = env(token_texts[i].var);
        if (value != NULL && (cfg.token_text[i] = strdup(value)) == NULL)
            ok = config_error(token_texts[i].var, value, "out of memory");
    }
    return ok;
}

/*
 * The real module stays loaded until the process exits, even across C_Finalize, so that cfg.real
 * can be read without a lock like the rest of the one-time configuration.
 */
static CK_RV load_module(void)
{
    const char *path = env("P11SHIM_MODULE");
    if (path == NULL) {
        fprintf(stderr, "p11shim: P11SHIM_MODULE is not set\n");
        return CKR_GENERAL_ERROR;
    }
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        fprintf(stderr, "p11shim: P11SHIM_MODULE=%s: %s\n", path, dlerror());
        return CKR_GENERAL_ERROR;
    }
    CK_C_GetFunctionList get_list;
    /* POSIX guarantees this object-to-function pointer conversion through the copy. */
    void *sym = dlsym(handle, "C_GetFunctionList");
    memcpy(&get_list, &sym, sizeof(get_list));
    CK_FUNCTION_LIST_PTR real = NULL;
    if (sym == NULL || get_list(&real) != CKR_OK || real == NULL) {
        fprintf(stderr, "p11shim: P11SHIM_MODULE=%s: no usable C_GetFunctionList\n", path);
        return CKR_GENERAL_ERROR;
    }
    cfg.real = real;
    return CKR_OK;
}

static void load_config(void)
{
    if (!parse_config())
        cfg.load_rv = CKR_ARGUMENTS_BAD;
    else
        cfg.load_rv = load_module();
}

/* ---- per-call machinery ---- */

static void sleep_ms(unsigned long ms)
{
    struct timespec left = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
}

/* Counts calls of the failing function and says whether this one falls in the error window. */
static bool in_fail_window(void)
{
    pthread_mutex_lock(&counter_lock);
    unsigned long n = fail_calls;
    if (fail_calls < ULONG_MAX)
        fail_calls++;
    pthread_mutex_unlock(&counter_lock);
    return n >= cfg.fail_after && (cfg.fail_count == 0 || n - cfg.fail_after < cfg.fail_count);
}

/* Applies delay and failure injection; false means *rv is the answer and nothing is forwarded. */
static bool inject(enum shim_func fn, CK_RV *rv)
{
    if (cfg.delay_ms > 0 && (cfg.delay_func == FN_NONE || cfg.delay_func == (int)fn)) {
        static pthread_mutex_t card = PTHREAD_MUTEX_INITIALIZER;
        if (cfg.delay_serial)
            pthread_mutex_lock(&card);
        sleep_ms(cfg.delay_ms);
        if (cfg.delay_serial)
            pthread_mutex_unlock(&card);
    }
    if (cfg.fail_func == (int)fn && in_fail_window()) {
        *rv = cfg.fail_rv;
        return false;
    }
    return true;
}

/* Returns the real module to forward to, or NULL with *rv already set. */
static CK_FUNCTION_LIST_PTR enter(enum shim_func fn, CK_RV *rv)
{
    pthread_once(&cfg_once, load_config);
    if (cfg.load_rv != CKR_OK) {
        *rv = fn == FN_C_Initialize ? cfg.load_rv : CKR_CRYPTOKI_NOT_INITIALIZED;
        return NULL;
    }
    return inject(fn, rv) ? cfg.real : NULL;
}

/* Opened per line so that no descriptor outlives C_Finalize or leaks into a fork. */
static void append_line(const char *path, const char *line, size_t len)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        /* O_APPEND plus a single write keeps lines from concurrent threads whole. */
        ssize_t written = write(fd, line, len);
        (void)written;
        close(fd);
    }
}

static CK_RV leave(enum shim_func fn, CK_RV rv)
{
    if (cfg.log_path == NULL)
        return rv;
    char line[64];
    int len = snprintf(line, sizeof(line), "%s 0x%08lx\n", func_names[fn], (unsigned long)rv);
    if (len < 0 || (size_t)len >= sizeof(line))
        return rv;
    append_line(cfg.log_path, line, (size_t)len);
    return rv;
}

/*
 * One line per signature rather than a number rewritten in place: processes sharing the file
 * add up, a reader never sees a half-written number, and truncating it between runs is safe.
 */
static void count_signature(enum shim_func fn)
{
    if (cfg.count_path == NULL)
        return;
    char line[32];
    int len = snprintf(line, sizeof(line), "%s\n", func_names[fn]);
    if (len > 0 && (size_t)len < sizeof(line))
        append_line(cfg.count_path, line, (size_t)len);
}

static bool mech_hidden(CK_MECHANISM_TYPE mech)
{
    for (size_t i = 0; i < cfg.n_hidden; i++) {
        if (cfg.hidden[i] == mech)
            return true;
    }
    return false;
}

static bool mech_ptr_hidden(CK_MECHANISM_PTR mechanism)
{
    return mechanism != NULL && mech_hidden(mechanism->mechanism);
}

/*
 * PKCS#11 says a failed C_Sign, C_EncryptUpdate etc. ends the active operation. An injected
 * failure never reaches the real module, whose operation would stay active and make the caller's
 * next C_SignInit fail with CKR_OPERATION_ACTIVE. So the shim ends it with a throwaway call of
 * its own; the caller's data still never reaches the module.
 */
static void finish(enum shim_func terminator, CK_SESSION_HANDLE session)
{
    CK_FUNCTION_LIST_PTR real = cfg.real;
    CK_BYTE in[1] = {0};
    CK_BYTE buffer[8192];
    CK_BYTE *out = buffer;
    CK_ULONG out_len = sizeof(buffer);
    CK_RV rv = CKR_OK;
    /* A second round with a big enough buffer, since CKR_BUFFER_TOO_SMALL leaves it active. */
    for (int round = 0; round < 2; round++) {
        switch (terminator) {
        case FN_C_Sign:
            rv = real->C_Sign(session, in, sizeof(in), out, &out_len);
            break;
        case FN_C_SignFinal:
            rv = real->C_SignFinal(session, out, &out_len);
            break;
        case FN_C_SignRecover:
            rv = real->C_SignRecover(session, in, sizeof(in), out, &out_len);
            break;
        case FN_C_Verify:
            rv = real->C_Verify(session, in, sizeof(in), in, sizeof(in));
            break;
        case FN_C_VerifyFinal:
            rv = real->C_VerifyFinal(session, in, sizeof(in));
            break;
        case FN_C_VerifyRecover:
            rv = real->C_VerifyRecover(session, in, sizeof(in), out, &out_len);
            break;
        case FN_C_Encrypt:
            rv = real->C_Encrypt(session, in, sizeof(in), out, &out_len);
            break;
        case FN_C_EncryptFinal:
            rv = real->C_EncryptFinal(session, out, &out_len);
            break;
        case FN_C_Decrypt:
            rv = real->C_Decrypt(session, in, sizeof(in), out, &out_len);
            break;
        case FN_C_DecryptFinal:
            rv = real->C_DecryptFinal(session, out, &out_len);
            break;
        case FN_C_Digest:
            rv = real->C_Digest(session, in, sizeof(in), out, &out_len);
            break;
        case FN_C_DigestFinal:
            rv = real->C_DigestFinal(session, out, &out_len);
            break;
        default:
            return;
        }
        if (rv != CKR_BUFFER_TOO_SMALL || out != buffer || (out = malloc(out_len)) == NULL)
            break;
    }
    if (out != buffer)
        free(out);
}

/* Called when `fn` did not reach the real module; see finish() for why. */
static void end_operation(enum shim_func fn, CK_SESSION_HANDLE session, CK_RV rv)
{
    /* Without a module nothing was started; these two codes leave the operation active. */
    if (cfg.real == NULL || rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL)
        return;
    switch (fn) {
    case FN_C_SignUpdate:
        fn = FN_C_SignFinal;
        break;
    case FN_C_VerifyUpdate:
        fn = FN_C_VerifyFinal;
        break;
    case FN_C_EncryptUpdate:
        fn = FN_C_EncryptFinal;
        break;
    case FN_C_DecryptUpdate:
        fn = FN_C_DecryptFinal;
        break;
    case FN_C_DigestUpdate:
    case FN_C_DigestKey:
        fn = FN_C_DigestFinal;
        break;
    case FN_C_DigestEncryptUpdate:
        finish(FN_C_DigestFinal, session);
        fn = FN_C_EncryptFinal;
        break;
    case FN_C_DecryptDigestUpdate:
        finish(FN_C_DecryptFinal, session);
        fn = FN_C_DigestFinal;
        break;
    case FN_C_SignEncryptUpdate:
        finish(FN_C_SignFinal, session);
        fn = FN_C_EncryptFinal;
        break;
    case FN_C_DecryptVerifyUpdate:
        finish(FN_C_DecryptFinal, session);
        fn = FN_C_VerifyFinal;
        break;
    default:
        break;
    }
    finish(fn, session);
}

/* ---- plain forwarders ---- */

/*
 * `refused` is checked after injection and answers CKR_MECHANISM_INVALID; `injected` runs when
 * the call was not forwarded.
 */
#define FORWARD_WITH(name, refused, injected, params, args)                                        \
    static CK_RV shim_##name params                                                                \
    {                                                                                              \
        CK_RV rv;                                                                                  \
        CK_FUNCTION_LIST_PTR real = enter(FN_##name, &rv);                                         \
        if (real == NULL)                                                                          \
            injected;                                                                              \
        else                                                                                       \
            rv = (refused) ? CKR_MECHANISM_INVALID : real->name args;                              \
        return leave(FN_##name, rv);                                                               \
    }

#define FORWARD(name, params, args) FORWARD_WITH(name, false, (void)0, params, args)
#define FORWARD_MECH(name, params, args)                                                           \
    FORWARD_WITH(name, mech_ptr_hidden(mechanism), (void)0, params, args)
#define FORWARD_OP(name, params, args)                                                             \
    FORWARD_WITH(name, false, end_operation(FN_##name, session, rv), params, args)

/* FORWARD_OP for the calls that finish a signature; see P11SHIM_COUNT. */
#define FORWARD_SIGN(name, params, args)                                                           \
    static CK_RV shim_##name params                                                                \
    {                                                                                              \
        CK_RV rv;                                                                                  \
        CK_FUNCTION_LIST_PTR real = enter(FN_##name, &rv);                                         \
        if (real == NULL)                                                                          \
            end_operation(FN_##name, session, rv);                                                 \
        else if ((rv = real->name args) == CKR_OK && signature != NULL)                            \
            count_signature(FN_##name);                                                            \
        return leave(FN_##name, rv);                                                               \
    }

FORWARD(C_Initialize, (CK_VOID_PTR init_args), (init_args))
FORWARD(C_Finalize, (CK_VOID_PTR reserved), (reserved))
FORWARD(C_GetInfo, (CK_INFO_PTR info), (info))
FORWARD(C_GetSlotList, (CK_BBOOL token_present, CK_SLOT_ID_PTR slots, CK_ULONG_PTR count),
        (token_present, slots, count))
FORWARD(C_InitToken,
        (CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len, CK_UTF8CHAR_PTR label),
        (slot, pin, pin_len, label))
FORWARD(C_InitPIN, (CK_SESSION_HANDLE session, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len),
        (session, pin, pin_len))
FORWARD(C_SetPIN,
        (CK_SESSION_HANDLE session, CK_UTF8CHAR_PTR old_pin, CK_ULONG old_len,
         CK_UTF8CHAR_PTR new_pin, CK_ULONG new_len),
        (session, old_pin, old_len, new_pin, new_len))
FORWARD(C_OpenSession,
        (CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR application, CK_NOTIFY notify,
         CK_SESSION_HANDLE_PTR session),
        (slot, flags, application, notify, session))
FORWARD(C_CloseSession, (CK_SESSION_HANDLE session), (session))
FORWARD(C_CloseAllSessions, (CK_SLOT_ID slot), (slot))
FORWARD(C_GetSessionInfo, (CK_SESSION_HANDLE session, CK_SESSION_INFO_PTR info), (session, info))
FORWARD(C_GetOperationState, (CK_SESSION_HANDLE session, CK_BYTE_PTR state, CK_ULONG_PTR state_len),
        (session, state, state_len))
FORWARD(C_SetOperationState,
        (CK_SESSION_HANDLE session, CK_BYTE_PTR state, CK_ULONG state_len,
         CK_OBJECT_HANDLE encryption_key, CK_OBJECT_HANDLE authentication_key),
        (session, state, state_len, encryption_key, authentication_key))
FORWARD(C_Login,
        (CK_SESSION_HANDLE session, CK_USER_TYPE user_type, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len),
        (session, user_type, pin, pin_len))
FORWARD(C_Logout, (CK_SESSION_HANDLE session), (session))
FORWARD(C_CreateObject,
        (CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR templ, CK_ULONG count,
         CK_OBJECT_HANDLE_PTR object),
        (session, templ, count, object))
FORWARD(C_CopyObject,
        (CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object, CK_ATTRIBUTE_PTR templ, CK_ULONG count,
         CK_OBJECT_HANDLE_PTR new_object),
        (session, object, templ, count, new_object))
FORWARD(C_DestroyObject, (CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object), (session, object))
FORWARD(C_GetObjectSize, (CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object, CK_ULONG_PTR size),
        (session, object, size))
FORWARD(C_SetAttributeValue,
        (CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object, CK_ATTRIBUTE_PTR templ,
         CK_ULONG count),
        (session, object, templ, count))
FORWARD(C_FindObjectsInit, (CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR templ, CK_ULONG count),
        (session, templ, count))
FORWARD(C_FindObjects,
        (CK_SESSION_HANDLE session, CK_OBJECT_HANDLE_PTR objects, CK_ULONG max_count,
         CK_ULONG_PTR found),
        (session, objects, max_count, found))
FORWARD(C_FindObjectsFinal, (CK_SESSION_HANDLE session), (session))
FORWARD_MECH(C_EncryptInit,
             (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key),
             (session, mechanism, key))
FORWARD_OP(C_Encrypt,
           (CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len, CK_BYTE_PTR out,
            CK_ULONG_PTR out_len),
           (session, data, data_len, out, out_len))
FORWARD_OP(C_EncryptUpdate,
           (CK_SESSION_HANDLE session, CK_BYTE_PTR part, CK_ULONG part_len, CK_BYTE_PTR out,
            CK_ULONG_PTR out_len),
           (session, part, part_len, out, out_len))
FORWARD_OP(C_EncryptFinal, (CK_SESSION_HANDLE session, CK_BYTE_PTR out, CK_ULONG_PTR out_len),
           (session, out, out_len))
FORWARD_MECH(C_DecryptInit,
             (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key),
             (session, mechanism, key))
FORWARD_OP(C_Decrypt,
           (CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len, CK_BYTE_PTR out,
            CK_ULONG_PTR out_len),
           (session, data, data_len, out, out_len))
FORWARD_OP(C_DecryptUpdate,
           (CK_SESSION_HANDLE session, CK_BYTE_PTR part, CK_ULONG part_len, CK_BYTE_PTR out,
            CK_ULONG_PTR out_len),
           (session, part, part_len, out, out_len))
FORWARD_OP(C_DecryptFinal, (CK_SESSION_HANDLE session, CK_BYTE_PTR out, CK_ULONG_PTR out_len),
           (session, out, out_len))
FORWARD_MECH(C_DigestInit, (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism),
             (session, mechanism))
FORWARD_OP(C_Digest,
           (CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len, CK_BYTE_PTR digest,
            CK_ULONG_PTR digest_len),
           (session, data, data_len, digest, digest_len))
FORWARD_OP(C_DigestUpdate, (CK_SESSION_HANDLE session, CK_BYTE_PTR part, CK_ULONG part_len),
           (session, part, part_len))
FORWARD_OP(C_DigestKey, (CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key), (session, key))
FORWARD_OP(C_DigestFinal, (CK_SESSION_HANDLE session, CK_BYTE_PTR digest, CK_ULONG_PTR digest_len),
           (session, digest, digest_len))
FORWARD_MECH(C_SignInit,
             (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key),
             (session, mechanism, key))
FORWARD_SIGN(C_Sign,
             (CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len, CK_BYTE_PTR signature,
              CK_ULONG_PTR signature_len),
             (session, data, data_len, signature, signature_len))
FORWARD_OP(C_SignUpdate, (CK_SESSION_HANDLE session, CK_BYTE_PTR part, CK_ULONG part_len),
           (session, part, part_len))
FORWARD_SIGN(C_SignFinal,
             (CK_SESSION_HANDLE session, CK_BYTE_PTR signature, CK_ULONG_PTR signature_len),
             (session, signature, signature_len))
FORWARD_MECH(C_SignRecoverInit,
             (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key),
             (session, mechanism, key))
FORWARD_SIGN(C_SignRecover,
             (CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len, CK_BYTE_PTR signature,
              CK_ULONG_PTR signature_len),
             (session, data, data_len, signature, signature_len))
FORWARD_MECH(C_VerifyInit,
             (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key),
             (session, mechanism, key))
FORWARD_OP(C_Verify,
           (CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len, CK_BYTE_PTR signature,
            CK_ULONG signature_len),
           (session, data, data_len, signature, signature_len))
FORWARD_OP(C_VerifyUpdate, (CK_SESSION_HANDLE session, CK_BYTE_PTR part, CK_ULONG part_len),
           (session, part, part_len))
FORWARD_OP(C_VerifyFinal,
           (CK_SESSION_HANDLE session, CK_BYTE_PTR signature, CK_ULONG signature_len),
           (session, signature, signature_len))
FORWARD_MECH(C_VerifyRecoverInit,
             (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key),
             (session, mechanism, key))
FORWARD_OP(C_VerifyRecover,
           (CK_SESSION_HANDLE session, CK_BYTE_PTR signature, CK_ULONG signature_len,
            CK_BYTE_PTR data, CK_ULONG_PTR data_len),
           (session, signature, signature_len, data, data_len))
FORWARD_OP(C_DigestEncryptUpdate,
           (CK_SESSION_HANDLE session, CK_BYTE_PTR part, CK_ULONG part_len, CK_BYTE_PTR out,
            CK_ULONG_PTR out_len),
           (session, part, part_len, out, out_len))
FORWARD_OP(C_DecryptDigestUpdate,
           (CK_SESSION_HANDLE session, CK_BYTE_PTR part, CK_ULONG part_len, CK_BYTE_PTR out,
            CK_ULONG_PTR out_len),
           (session, part, part_len, out, out_len))
FORWARD_OP(C_SignEncryptUpdate,
           (CK_SESSION_HANDLE session, CK_BYTE_PTR part, CK_ULONG part_len, CK_BYTE_PTR out,
            CK_ULONG_PTR out_len),
           (session, part, part_len, out, out_len))
FORWARD_OP(C_DecryptVerifyUpdate,
           (CK_SESSION_HANDLE session, CK_BYTE_PTR part, CK_ULONG part_len, CK_BYTE_PTR out,
            CK_ULONG_PTR out_len),
           (session, part, part_len, out, out_len))
FORWARD_MECH(C_GenerateKey,
             (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_ATTRIBUTE_PTR templ,
              CK_ULONG count, CK_OBJECT_HANDLE_PTR key),
             (session, mechanism, templ, count, key))
FORWARD_MECH(C_GenerateKeyPair,
             (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_ATTRIBUTE_PTR pub_templ,
              CK_ULONG pub_count, CK_ATTRIBUTE_PTR priv_templ, CK_ULONG priv_count,
              CK_OBJECT_HANDLE_PTR pub_key, CK_OBJECT_HANDLE_PTR priv_key),
             (session, mechanism, pub_templ, pub_count, priv_templ, priv_count, pub_key, priv_key))
FORWARD_MECH(C_WrapKey,
             (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE wrapping_key,
              CK_OBJECT_HANDLE key, CK_BYTE_PTR wrapped, CK_ULONG_PTR wrapped_len),
             (session, mechanism, wrapping_key, key, wrapped, wrapped_len))
FORWARD_MECH(C_UnwrapKey,
             (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
              CK_OBJECT_HANDLE unwrapping_key, CK_BYTE_PTR wrapped, CK_ULONG wrapped_len,
              CK_ATTRIBUTE_PTR templ, CK_ULONG count, CK_OBJECT_HANDLE_PTR key),
             (session, mechanism, unwrapping_key, wrapped, wrapped_len, templ, count, key))
FORWARD_MECH(C_DeriveKey,
             (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE base_key,
              CK_ATTRIBUTE_PTR templ, CK_ULONG count, CK_OBJECT_HANDLE_PTR key),
             (session, mechanism, base_key, templ, count, key))
FORWARD(C_SeedRandom, (CK_SESSION_HANDLE session, CK_BYTE_PTR seed, CK_ULONG seed_len),
        (session, seed, seed_len))
FORWARD(C_GenerateRandom, (CK_SESSION_HANDLE session, CK_BYTE_PTR out, CK_ULONG out_len),
        (session, out, out_len))
FORWARD(C_GetFunctionStatus, (CK_SESSION_HANDLE session), (session))
FORWARD(C_CancelFunction, (CK_SESSION_HANDLE session), (session))
FORWARD(C_WaitForSlotEvent, (CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved),
        (flags, slot, reserved))

/* ---- forwarders that rewrite results ---- */

static CK_RV shim_C_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
    CK_RV rv;
    CK_FUNCTION_LIST_PTR real = enter(FN_C_GetSlotInfo, &rv);
    if (real != NULL) {
        rv = real->C_GetSlotInfo(slot, info);
        if (rv == CKR_OK && info != NULL)
            info->flags |= cfg.slot_flags;
    }
    return leave(FN_C_GetSlotInfo, rv);
}

static void pad_copy(unsigned char *field, size_t size, const char *text)
{
    size_t len = strlen(text);
    if (len > size)
        len = size;
    memset(field, ' ', size);
    memcpy(field, text, len);
}

static CK_RV shim_C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
    CK_RV rv;
    CK_FUNCTION_LIST_PTR real = enter(FN_C_GetTokenInfo, &rv);
    if (real != NULL) {
        rv = real->C_GetTokenInfo(slot, info);
        if (rv == CKR_OK && info != NULL) {
            info->flags |= cfg.token_flags;
            for (size_t i = 0; i < N_TOKEN_TEXTS; i++) {
                if (cfg.token_text[i] != NULL)
                    pad_copy((unsigned char *)info + token_texts[i].offset, token_texts[i].size,
                             cfg.token_text[i]);
            }
        }
    }
    return leave(FN_C_GetTokenInfo, rv);
}

/* Fetches the whole real list and filters it, so the counts a caller sees are self-consistent. */
static CK_RV filtered_mechanism_list(CK_FUNCTION_LIST_PTR real, CK_SLOT_ID slot,
                                     CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count)
{
    if (count == NULL)
        return CKR_ARGUMENTS_BAD;
    CK_MECHANISM_TYPE *all = NULL;
    CK_ULONG n = 0;
    CK_RV rv = CKR_BUFFER_TOO_SMALL;
    /* The real list may grow between the size query and the fetch; a few retries absorb that. */
    for (int attempt = 0; attempt < 8 && rv == CKR_BUFFER_TOO_SMALL; attempt++) {
        free(all);
        all = NULL;
        rv = real->C_GetMechanismList(slot, NULL, &n);
        if (rv != CKR_OK)
            return rv;
        all = calloc(n > 0 ? n : 1, sizeof(*all));
        if (all == NULL)
            return CKR_HOST_MEMORY;
        rv = real->C_GetMechanismList(slot, all, &n);
    }
    if (rv != CKR_OK) {
        free(all);
        return rv;
    }
    CK_ULONG kept = 0;
    for (CK_ULONG i = 0; i < n; i++) {
        if (!mech_hidden(all[i]))
            all[kept++] = all[i];
    }
    if (list != NULL && *count < kept)
        rv = CKR_BUFFER_TOO_SMALL;
    else if (list != NULL)
        memcpy(list, all, kept * sizeof(*all));
    *count = kept;
    free(all);
    return rv;
}

static CK_RV shim_C_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list,
                                     CK_ULONG_PTR count)
{
    CK_RV rv;
    CK_FUNCTION_LIST_PTR real = enter(FN_C_GetMechanismList, &rv);
    if (real != NULL && cfg.n_hidden == 0)
        rv = real->C_GetMechanismList(slot, list, count);
    else if (real != NULL)
        rv = filtered_mechanism_list(real, slot, list, count);
    return leave(FN_C_GetMechanismList, rv);
}

FORWARD_WITH(C_GetMechanismInfo, mech_hidden(type), (void)0,
             (CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info),
             (slot, type, info))

static bool override_for(CK_ATTRIBUTE_TYPE type, CK_BBOOL *value)
{
    bool found = false;
    /* The last mention wins, as with repeated command-line options. */
    for (size_t i = 0; i < cfg.n_overrides; i++) {
        if (cfg.override_type[i] == type) {
            *value = cfg.override_value[i];
            found = true;
        }
    }
    return found;
}

/* An entry holds a real value only if the module filled a buffer; see C_GetAttributeValue. */
static bool entry_filled(const CK_ATTRIBUTE *attr)
{
    return attr->pValue != NULL && attr->ulValueLen != CK_UNAVAILABLE_INFORMATION &&
           attr->ulValueLen >= 1;
}

static void override_attributes(CK_FUNCTION_LIST_PTR real, CK_SESSION_HANDLE session,
                                CK_OBJECT_HANDLE object, CK_ATTRIBUTE_PTR templ, CK_ULONG count)
{
    CK_BBOOL value;
    bool wanted = false;
    for (CK_ULONG i = 0; i < count && !wanted; i++)
        wanted = entry_filled(&templ[i]) && override_for(templ[i].type, &value);
    if (!wanted)
        return;

    /* Asked separately so the override never depends on what the caller's template contains. */
    CK_OBJECT_CLASS klass = (CK_OBJECT_CLASS)-1;
    CK_ATTRIBUTE class_attr = {CKA_CLASS, &klass, sizeof(klass)};
    if (real->C_GetAttributeValue(session, object, &class_attr, 1) != CKR_OK ||
        klass != CKO_PRIVATE_KEY)
        return;

    for (CK_ULONG i = 0; i < count; i++) {
        if (entry_filled(&templ[i]) && override_for(templ[i].type, &value)) {
            *(CK_BBOOL *)templ[i].pValue = value;
            templ[i].ulValueLen = sizeof(CK_BBOOL);
        }
    }
}

static CK_RV shim_C_GetAttributeValue(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                                      CK_ATTRIBUTE_PTR templ, CK_ULONG count)
{
    CK_RV rv;
    CK_FUNCTION_LIST_PTR real = enter(FN_C_GetAttributeValue, &rv);
    if (real != NULL) {
        rv = real->C_GetAttributeValue(session, object, templ, count);
        /* These return values still leave the other entries of the template filled in. */
        bool partial = rv == CKR_OK || rv == CKR_ATTRIBUTE_SENSITIVE ||
                       rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_BUFFER_TOO_SMALL;
        if (partial && templ != NULL && cfg.n_overrides > 0)
            override_attributes(real, session, object, templ, count);
    }
    return leave(FN_C_GetAttributeValue, rv);
}

/* ---- the function list ---- */

static CK_RV shim_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

static CK_FUNCTION_LIST function_list = {
    .version = {CRYPTOKI_VERSION_MAJOR, CRYPTOKI_VERSION_MINOR},
#define X(name) .name = shim_##name,
    SHIM_FUNCTIONS(X)
#undef X
};

/*
 * Works before C_Initialize (p11-kit asks first) and ignores a bad setup, which C_Initialize
 * reports instead; only an explicit P11SHIM_FAIL_FUNC=C_GetFunctionList makes it fail.
 */
static CK_RV shim_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    pthread_once(&cfg_once, load_config);
    CK_RV rv = CKR_OK;
    if (cfg.load_rv == CKR_OK && !inject(FN_C_GetFunctionList, &rv))
        return leave(FN_C_GetFunctionList, rv);
    if (list == NULL)
        rv = CKR_ARGUMENTS_BAD;
    else
        *list = &function_list;
    return leave(FN_C_GetFunctionList, rv);
}

__attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    return shim_C_GetFunctionList(list);
}
