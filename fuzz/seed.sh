# seed.sh: sourced by run.sh and campaign.sh. seed_corpus NAME DIR copies the project's
# fixtures and ../shared/external files that suit target NAME into corpus DIR ($EXTERNAL set).
seed_corpus() {
    name=$1
    corpus=$2
    case "$name" in
    fuzz_safetensors) cp -n testdata/sample/*.safetensors "$EXTERNAL"/*/*.safetensors "$corpus"/ 2>/dev/null ;;
    fuzz_pickle)
        find "$EXTERNAL" -type f -size -1024k \( -name '*.pkl' -o -name '*.pickle' \) -exec cp -n {} "$corpus"/ \; 2>/dev/null ;;
    fuzz_torch_zip | fuzz_torch_legacy)
        find testdata/torch testdata/moe/refused "$EXTERNAL" -type f -size -1024k \( -name '*.pt' -o -name '*.pth' -o -name '*.bin' \) \
            -exec cp -n {} "$corpus"/ \; 2>/dev/null ;;
    fuzz_archive)
        find testdata/archive "$EXTERNAL" -type f -size -1024k \( -name '*.tar' -o -name '*.nemo' -o -name '*.tar.gz' \
            -o -name '*.tar.zst' -o -name '*.zip' \) -exec cp -n {} "$corpus"/ \; 2>/dev/null ;;
    fuzz_bundle) cp -n testdata/hostile/*.ckb "$corpus"/ 2>/dev/null ;;
    fuzz_dcp_metadata)   # every file is named .metadata: numbered copies
        i=0
        for f in $(find testdata/dcp testdata/moe "$EXTERNAL" -type f -name .metadata -size -1024k 2>/dev/null); do
            i=$((i + 1))
            cp "$f" "$corpus/metadata-$i"
        done ;;
    esac
    return 0
}
