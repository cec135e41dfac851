#!/usr/bin/env bash
# Import the CellProfiler example fields (../shared/data/cellprofiler_examples) as chadavit datasets, with
# the channel names the `real` evaluation suite uses. Usage: benchmarks/import_cellprofiler_examples.sh OUT_DIR
# Then: chadavit pretrain --config plate "data.paths=[OUT/human,OUT/fly,OUT/speckles,OUT/vitra,OUT/coloc,OUT/transfluor]"
set -euo pipefail
E=${SHARED:-../shared}/data/cellprofiler_examples
D=${1:?usage: $0 OUT_DIR}
chadavit data import "$E/ExampleHuman" --out "$D/human" --pattern "{a}_{b}_{plate}_{well}f{site}d{channel}.tif" \
    --channel-map 0=DNA,1=PH3,2=CellBody
chadavit data import "$E/ExampleFly" --out "$D/fly" --pattern "{plate}_{site}_{channel}.TIF" --channel-map D=DNA,F=OrigGreen,R=OrigRed
chadavit data import "$E/ExampleSpeckles" --out "$D/speckles" --pattern "1-162hr{channel}2.tif" --channel-map hoe=DNA,h2ax=gH2AX
chadavit data import "$E/ExampleVitraImages" --out "$D/vitra" --pattern "Channel {channel}-{n}-{row}-{col}-00.tif" \
    --channel-map 1=protein,2=DNA
chadavit data import "$E/ExampleColocalization" --out "$D/coloc" --pattern "0_{site}_N_{channel}.png" \
    --channel-map G=stain1,R=stain2
chadavit data import "$E/ExampleIlluminationCorrection_Transfluor" --out "$D/transfluor" \
    --pattern "AS_09047_050428030001_{well}f{site}d{channel}.TIF" --channel-map 2=GFP
