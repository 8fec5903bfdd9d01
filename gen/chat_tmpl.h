/*
 * chat_tmpl.h — the chat template names `--chat-template NAME` takes (kgen
 * run and kgen compile; gen/tokdata.c stores the name in the tokenizer blob,
 * runtime/model/tok_chat.c formats by it, as llama.cpp takes these names in
 * place of a template). tests/test_tokenizer.c checks that every name here
 * is one the runtime formats.
 */
#ifndef KGEN_CHAT_TMPL_H
#define KGEN_CHAT_TMPL_H

#include <stdbool.h>
#include <string.h>

#define GEN_CHAT_TEMPLATE_NAMES "chatml, llama3, gemma, phi3"

static inline bool gen_chat_template_known(const char *name)
{
    static const char *const names[] = {"chatml", "llama3", "gemma", "phi3"};
    for (size_t i = 0; name && i < sizeof names / sizeof *names; i++)
        if (!strcmp(name, names[i])) return true;
    return false;
}

#endif
