// The cut-out compositor: photo and mask arrive as separate textures, so a
// new background is one uniform write, never a CPU re-composite.
//
// One shader serves two pipelines:
// - on screen (egui paint callback): the quad covers the image rectangle,
//   textures are sampled with filtering, the original shows left of the
//   compare divider, and transparency is drawn as a checkerboard;
// - export (offscreen, image-sized target): texels are read one to one with
//   textureLoad and written straight (not premultiplied), matching the CPU
//   reference composite in src/composite/cpu.rs within one level.
//
// CHECKER_LIGHT and CHECKER_DARK are prepended by composite::gpu::shader_source
// from composite::checkerboard, which the CPU canvas also uses.

struct Params {
    // Background colour (rgb, 0..1) for mode 1.
    colour: vec4<f32>,
    // 0 transparent, 1 colour, 2 image or blur (background texture).
    mode: u32,
    // 1: export (exact texel reads, straight alpha out); 0: on screen.
    export_exact: u32,
    // Compare divider, as a fraction of the image width (on screen only).
    split: f32,
    // Checkerboard cell size in physical pixels (on screen only).
    checker: f32,
};

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var photo: texture_2d<f32>;
@group(0) @binding(2) var mask: texture_2d<f32>;
@group(0) @binding(3) var background: texture_2d<f32>;
@group(0) @binding(4) var smooth_sampler: sampler;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

// A quad over the whole viewport from two triangles, no vertex buffer.
@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOut {
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(0.0, 0.0), vec2<f32>(1.0, 0.0), vec2<f32>(0.0, 1.0),
        vec2<f32>(0.0, 1.0), vec2<f32>(1.0, 0.0), vec2<f32>(1.0, 1.0),
    );
    let uv = corners[index];
    var out: VertexOut;
    out.position = vec4<f32>(uv.x * 2.0 - 1.0, 1.0 - uv.y * 2.0, 0.0, 1.0);
    out.uv = uv;
    return out;
}

fn blend(fg: vec3<f32>, alpha: f32, bg: vec3<f32>) -> vec3<f32> {
    return fg * alpha + bg * (1.0 - alpha);
}

@fragment
fn fs_export(in: VertexOut) -> @location(0) vec4<f32> {
    let texel = vec2<i32>(floor(in.position.xy));
    let src = textureLoad(photo, texel, 0);
    let alpha = src.a * textureLoad(mask, texel, 0).r;
    if params.mode == 0u {
        return vec4<f32>(src.rgb, alpha);
    }
    var bg = params.colour.rgb;
    if params.mode == 2u {
        bg = textureLoad(background, texel, 0).rgb;
    }
    return vec4<f32>(blend(src.rgb, alpha, bg), 1.0);
}

fn checkerboard(position: vec2<f32>) -> vec3<f32> {
    let cell = floor(position / max(params.checker, 1.0));
    let odd = (i32(cell.x) + i32(cell.y)) % 2;
    return select(vec3<f32>(CHECKER_LIGHT), vec3<f32>(CHECKER_DARK), odd != 0);
}

@fragment
fn fs_screen(in: VertexOut) -> @location(0) vec4<f32> {
    // Sample before any branch: implicit-derivative sampling must stay in
    // uniform control flow.
    let src = textureSample(photo, smooth_sampler, in.uv);
    let coverage = textureSample(mask, smooth_sampler, in.uv).r;
    let picture = textureSample(background, smooth_sampler, in.uv).rgb;
    let under = checkerboard(in.position.xy);
    if in.uv.x < params.split {
        return vec4<f32>(blend(src.rgb, src.a, under), 1.0);
    }
    var bg = under;
    if params.mode == 1u {
        bg = params.colour.rgb;
    } else if params.mode == 2u {
        bg = picture;
    }
    return vec4<f32>(blend(src.rgb, src.a * coverage, bg), 1.0);
}
