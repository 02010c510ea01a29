# serve/web.cmake - the web view's pages (serve/web/) compiled into the
# binary: serve/embed_assets.cmake turns each file into a byte array at
# build time (pure CMake, no xxd), into the library ht_web_assets that
# serve/web.c (built into ht_serve) reads. Included from the top-level
# CMakeLists.txt after ht_serve is defined.
set(HT_WEB_FILES index.html trace.html app.js app.css)
set(HT_WEB_DEPS)
foreach(f ${HT_WEB_FILES})
  list(APPEND HT_WEB_DEPS ${PROJECT_SOURCE_DIR}/serve/web/${f})
endforeach()
string(REPLACE ";" "," HT_WEB_FILES_ARG "${HT_WEB_FILES}")
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/serve/web_assets.c
                   COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/serve
                   COMMAND ${CMAKE_COMMAND} -DOUT=${CMAKE_BINARY_DIR}/serve/web_assets.c
                           -DSRC_DIR=${PROJECT_SOURCE_DIR}/serve/web
                           -DFILES=${HT_WEB_FILES_ARG}
                           -P ${PROJECT_SOURCE_DIR}/serve/embed_assets.cmake
                   DEPENDS ${HT_WEB_DEPS} ${PROJECT_SOURCE_DIR}/serve/embed_assets.cmake
                   COMMENT "Embedding the web view's assets"
                   VERBATIM)
add_library(ht_web_assets STATIC ${CMAKE_BINARY_DIR}/serve/web_assets.c)
target_include_directories(ht_web_assets PUBLIC ${PROJECT_SOURCE_DIR}/serve)
if(TARGET ht_serve)
  target_link_libraries(ht_serve PRIVATE ht_web_assets)
endif()
